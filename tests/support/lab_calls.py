"""A call across the test network (tests/support/netlab.py): ``rapport serve`` in the lab's "server" host behind
1:1 NAT with HTTPS from a test CA, Chromium in the "phone" and "office" hosts, and what the customer page's
``getStats()`` says about the path the call took. Shared by tests/network and bench/networks.py.

Chromium is told to accept exactly the leaf certificates it is given (``--ignore-certificate-errors-spki-list``
with their SPKI hashes; Chromium reads that flag only with a user data dir, which Playwright always gives it): it
refuses a ``turns:`` server whose certificate it cannot verify (tests/network/test_chromium_turn.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from .browser import (
    CHROMIUM,
    CUSTOMER,
    REP,
    Chromium,
    Side,
    assert_sees_and_hears,
    chromium,
    desktop_page,
    fake_capture,
    phone_page,
    rep_login,
)
from .coturn import Coturn, TestCA, spki_sha256
from .netlab import NetLab
from .serve import QUIET_ENV, ServeProcess, add_user
from .server import PASSWORD


class LabRapport:
    """``rapport serve`` in the lab's server host: ``url`` on its private address (the test's own view, from
    the router), ``public_url`` where the browsers go (the 1:1 NAT's address)."""

    def __init__(self, process: ServeProcess, public_url: str, cert_file: Path) -> None:
        self.process = process
        self.url = process.url
        self.public_url = public_url
        self.cert_file = cert_file


@asynccontextmanager
async def rapport_in_lab(
    lab: NetLab, folder: Path, ca: TestCA, turn: Coturn | None, *, ttl_s: int = 600
) -> AsyncIterator[LabRapport]:
    """The server in ``lab.server`` with HTTPS (a certificate from ``ca``), the announced public address, and
    ``turn`` as its TURN relay (none: no TURN at all), rep1 in its database."""
    data = folder / "data"
    data.mkdir(parents=True)
    add_user(data, "rep1", "rep", PASSWORD)
    host = lab.server
    cert, key = ca.issue(folder, "server", [host.public, host.address])
    env = {**QUIET_ENV, "RAPPORT_PUBLIC_IP": host.public, "SSL_CERT_FILE": str(ca.cert_file)}
    if turn is not None:
        env |= {
            "RAPPORT_TURN_SECRET": turn.secret,
            "RAPPORT_TURN_URLS": ",".join(turn.urls),
            "RAPPORT_TURN_TTL_S": str(ttl_s),
        }
    process = ServeProcess(
        data, "--cert", str(cert), "--key", str(key), env=env, https=True, host=host.address, prefix=host.cmd([])
    )
    async with process:
        try:
            yield LabRapport(process, f"https://{host.public}:{process.port}", cert)
        finally:
            print("---- rapport serve log (tail)\n" + process.log[-6000:])


def _fake_capture_in(folder: Path, side: Side) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return fake_capture(folder, side)


@asynccontextmanager
async def chromium_in(
    host_name: str, lab: NetLab, folder: Path, side: Side, trusted: Sequence[Path]
) -> AsyncIterator[Chromium]:
    """A headless Chromium in one of the lab's hosts, showing ``side``'s colour and playing its tone, that
    accepts the ``trusted`` leaf certificates (and no other certificate it cannot verify)."""
    host = lab.hosts[host_name]
    capture = await asyncio.to_thread(_fake_capture_in, folder, side)
    args = (
        [f"--ignore-certificate-errors-spki-list={','.join(spki_sha256(cert) for cert in trusted)}"] if trusted else []
    )
    async with chromium(*capture, executable=host.wrapper(CHROMIUM, folder / "bin"), extra_args=args) as launched:
        yield launched


# Test-side only: every RTCPeerConnection the page makes gathers relay candidates only, as a browser with
# iceTransportPolicy "relay" does (the product does not set it; a deployment never needs to).
RELAY_ONLY_JS = """(() => {
  const Native = window.RTCPeerConnection;
  const relay = (config) => ({ ...(config || {}), iceTransportPolicy: "relay" });
  class RelayOnly extends Native {
    constructor(config, ...rest) { super(relay(config), ...rest); }
    setConfiguration(config) { return super.setConfiguration(relay(config)); }
  }
  window.RTCPeerConnection = RelayOnly;
})();"""

# The customer page's ICE as getStats() tells it: the transport's selected candidate pair, every pair that
# carried bytes, and every local candidate the page gathered.
SELECTED_PAIR_JS = """async () => {
  const pc = window.rapport.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  const candidate = (c) => c && ({ type: c.candidateType, relayProtocol: c.relayProtocol || null,
                                   address: c.address, port: c.port, protocol: c.protocol, url: c.url || null });
  const pairOf = (p) => p && ({ state: p.state, bytesSent: p.bytesSent || 0, bytesReceived: p.bytesReceived || 0,
    local: candidate(byId.get(p.localCandidateId)), remote: candidate(byId.get(p.remoteCandidateId)) });
  const locals = [], used = [];
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    if (s.type === "local-candidate") locals.push(candidate(s));
    if (s.type === "candidate-pair" && (s.bytesSent || s.bytesReceived)) used.push(pairOf(s));
  });
  return { configured: pc.getConfiguration().iceTransportPolicy, locals, used, pair: pairOf(pair) };
}"""


async def selected_pair(page: Page) -> dict[str, Any]:
    value: dict[str, Any] | None = await page.evaluate(SELECTED_PAIR_JS)
    assert value is not None, "the customer page has no peer connection"
    return value


def assert_relayed_both_ways(stats: dict[str, Any]) -> None:
    """The page sent on its selected pair, and every pair that carried bytes either way has a relay candidate
    on the page's side.

    Not "received on the selected pair": the server's aioice (ICE-controlled) sends on the pair Chromium
    nominated, and Chromium may later select another pair without nominating it again (seen here: Chromium
    sending over the UDP allocation while the server answered to the TCP one). Both are relayed.
    """
    assert stats["pair"]["bytesSent"] > 0, stats
    assert sum(p["bytesReceived"] for p in stats["used"]) > 0, stats
    assert all(p["local"]["type"] == "relay" for p in stats["used"]), stats


async def call_through_the_lab(
    rapport: LabRapport, customer_side: Chromium, rep_side: Chromium, *, customer_script: str | None = None
) -> tuple[Page, Page]:
    """(rep, customer) in a call the rep accepted, each page showing and playing the other side."""
    rep = await desktop_page(rep_side.browser, f"{rapport.public_url}/console")
    await rep_login(rep)
    customer = await phone_page(*customer_side, f"{rapport.public_url}/call", init_script=customer_script)
    await customer.get_by_test_id("start-call").click()
    await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
    await rep.get_by_test_id("accept").click()
    await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")
    await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)
    await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER)
    return rep, customer
