"""coturn as the real judge of TURN credentials: it takes what Rapport hands out, over every transport Rapport
names, and refuses expired, forged and tampered ones; and it relays only to the addresses it is allowed to.

The client is aioice's own TURN client (``aioice.turn.create_turn_endpoint``, what the server's peers use),
talking from the test process on the router to coturn in the lab's "turn" host.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice import stun
from aioice.turn import TurnTransport, create_turn_endpoint

from tests.support.clients import login, start_call, welcomed
from tests.support.coturn import Coturn, TestCA, rest_credential, rest_password
from tests.support.lab_calls import rapport_in_lab
from tests.support.netlab import SERVER_PUBLIC, NetLab
from tests.support.server import PASSWORD

pytestmark = pytest.mark.webrtc  # a private network namespace (make test's unshare -rn)

ECHO_PORT = 7000
TURN_URL = re.compile(r"(?P<scheme>turns?):(?P<host>[^:?]+):(?P<port>\d+)\?transport=(?P<transport>udp|tcp)")


class Peer(asyncio.DatagramProtocol):
    """What comes back through the relay, and the errors its sends raise (a refused permission among them)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


async def allocate(turn: Coturn, username: str, password: str, url: str | None = None) -> tuple[TurnTransport, Peer]:
    """A relay allocation at ``url`` (default: UDP on 3478) with these credentials; raises what coturn answered."""
    found = TURN_URL.fullmatch(url or turn.url("udp"))
    assert found is not None, url
    tls: ssl.SSLContext | None = None
    if found["scheme"] == "turns":
        assert turn.ca is not None
        tls = turn.ca.ssl_context()
    return await create_turn_endpoint(
        Peer,
        (found["host"], int(found["port"])),
        username,
        password,
        ssl=tls,
        transport=found["transport"],
    )


async def refused_with(turn: Coturn, username: str, password: str) -> int | None:
    """coturn's error code for an allocation with these credentials (None if it allocated)."""
    try:
        relay, _peer = await allocate(turn, username, password)
    except stun.TransactionFailed as refusal:
        return refusal.response.error_code
    relay.close()
    return None


async def relays_to(relay: TurnTransport, peer: Peer, address: str) -> int | None:
    """Send through ``relay`` to an echo at ``address``: None if the answer came back, else coturn's error code."""
    relay.sendto(b"through the relay", (address, ECHO_PORT))
    received = asyncio.ensure_future(peer.received.get())
    error = asyncio.ensure_future(peer.errors.get())
    done, pending = await asyncio.wait({received, error}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, f"neither an answer nor an error from {address}"
    if received in done:
        data, _ = received.result()
        assert data.startswith(b"through the relay from "), data
        return None
    refusal = error.result()
    assert isinstance(refusal, stun.TransactionFailed), refusal
    return refusal.response.error_code


async def test_coturn_refuses_expired_forged_and_tampered_credentials(coturn: Coturn) -> None:
    good_user, good_password = coturn.credential("ada")
    assert await refused_with(coturn, good_user, good_password) is None  # the control: coturn takes a good one

    expired = coturn.credential("ada", ttl_s=-60)
    assert await refused_with(coturn, *expired) == 401
    # The right username, a password from another secret (forged HMAC), or none that is base64 at all.
    assert await refused_with(coturn, good_user, rest_credential("not the secret", "ada", ttl_s=600)[1]) == 401
    assert await refused_with(coturn, good_user, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") == 401
    # An expired credential's expiry pushed into the future keeps its old password: the HMAC no longer matches.
    expired_user, expired_password = expired
    stretched = f"{int(time.time()) + 3600}:{expired_user.split(':', 1)[1]}"
    assert await refused_with(coturn, stretched, expired_password) == 401
    # Correctly signed, but with no expiry in the username (coturn reads none as long past).
    assert await refused_with(coturn, "ada", rest_password(coturn.secret, "ada")) == 401
    # A good password carried over to another label.
    assert await refused_with(coturn, good_user.replace(":ada", ":eve"), good_password) == 401


async def test_coturn_relays_only_to_the_labs_public_addresses(lab: NetLab, coturn: Coturn) -> None:
    lab.server.echo(ECHO_PORT)
    lab.office.echo(ECHO_PORT)
    for url in coturn.urls:
        relay, peer = await allocate(coturn, *coturn.credential("ada"), url=url)
        try:
            assert await relays_to(relay, peer, SERVER_PUBLIC) is None, url
            # The server's private address (behind its NAT), another private network, the relay's own
            # loopback, link-local: all refused (403 Forbidden IP), as a deployment's coturn must.
            for address in (lab.server.address, lab.office.address, "127.0.0.1", "169.254.169.254"):
                assert await relays_to(relay, peer, address) == 403, (url, address)
        finally:
            relay.close()


async def test_rapport_hands_out_fresh_credentials_that_coturn_takes_until_they_expire(
    lab: NetLab, coturn: Coturn, test_ca: TestCA, tmp_path: Path
) -> None:
    ttl_s = 5
    async with (
        rapport_in_lab(lab, tmp_path / "rapport", test_ca, coturn, ttl_s=ttl_s) as rapport,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=test_ca.ssl_context())) as http,
    ):
        call = await start_call(http, rapport.url, name="Ada")
        first = await turn_entry(http, rapport.url, call["token"])
        expiry, _, label = first["username"].partition(":")
        assert label == call["session_id"], first
        assert sorted(first["urls"]) == sorted(coturn.urls), first
        for url in first["urls"]:
            relay, _peer = await allocate(coturn, first["username"], first["credential"], url=url)
            relay.close()

        # A reconnect is a new hello: a credential of its own, expiring later, and coturn takes it too.
        await asyncio.sleep(1.1)  # the expiry counts whole seconds
        again = await turn_entry(http, rapport.url, call["token"])
        assert again["username"] != first["username"] and again["credential"] != first["credential"]
        assert again["username"].partition(":")[2] == label
        assert int(again["username"].partition(":")[0]) > int(expiry)
        assert await refused_with(coturn, again["username"], again["credential"]) is None

        # The rep's console gets its own.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=test_ca.ssl_context()), cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as rep_http:  # unsafe: keep the login cookie of a server that has an IP address for a name
            await login(rep_http, rapport.url, "rep1", PASSWORD)
            rep = await turn_entry(rep_http, rapport.url, None)
        assert rep["username"].partition(":")[2] not in ("", label), rep
        assert await refused_with(coturn, rep["username"], rep["credential"]) is None

        # Once its expiry has passed, coturn refuses the first one.
        await asyncio.sleep(max(0.0, int(expiry) + 1.5 - time.time()))
        assert await refused_with(coturn, first["username"], first["credential"]) == 401


async def turn_entry(http: aiohttp.ClientSession, url: str, token: str | None) -> dict[str, Any]:
    """The one TURN entry of the welcome a hello (as the customer of ``token``, or as ``http``'s staff) gets."""
    client = await welcomed(http, url, token)
    try:
        welcome = next(m for m in client.inbox if m["type"] == "welcome")
    finally:
        await client.close()
    entries = [s for s in welcome["ice_servers"] if any(u.startswith(("turn:", "turns:")) for u in s["urls"])]
    assert len(entries) == 1, welcome["ice_servers"]
    entry: dict[str, Any] = entries[0]
    return entry
