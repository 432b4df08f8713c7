"""Call setup on each network path, and what relaying through TURN costs the server.

Inside the bench's own network namespace it builds the test network (tests/support/netlab.py): a phone, an
office, a server behind 1:1 NAT and a TURN host, with coturn (Debian's) in the TURN host and ``rapport serve``
in the server host. A real Chromium in the phone is the customer and one in the office is the rep. For each path,
the firewall is set and a call is made ``--runs`` times:

* **direct**: UDP from the phone to the server's announced address (``public_ip``);
* **relay-udp**: the phone's Chromium gathers relay candidates only (``iceTransportPolicy: "relay"``) and direct
  UDP between phone and server is dropped: TURN over UDP;
* **relay-tcp**: the phone may send nothing but TCP, to the server's HTTPS port and coturn's 3478: TURN over TCP;
* **relay-tls**: the same with coturn's 5349 instead: TURN over TLS.

Call setup is from the rep's click on Accept to both pages presenting the other's first video frame
(``requestVideoFrameCallback``), both read off the same clock. While each path's last call runs, the CPU time
of the server process (its media included) and of coturn is sampled over ``--window`` seconds.

    unshare -rn sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && exec "$0" "$@"' \\
        .venv/bin/python bench/networks.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import Page, expect  # noqa: E402

from bench.common import in_private_netns, machine, progress, source_revision  # noqa: E402
from tests.support.browser import CUSTOMER, REP, desktop_page, phone_page, rep_login  # noqa: E402
from tests.support.coturn import TURN_PORT, TURNS_PORT, Coturn, TestCA  # noqa: E402
from tests.support.lab_calls import RELAY_ONLY_JS, chromium_in, rapport_in_lab, selected_pair  # noqa: E402
from tests.support.netlab import NetLab, Rule  # noqa: E402

PATHS = ("direct", "relay-udp", "relay-tcp", "relay-tls")

# Resolves with Date.now() when the page's remote video presents its first frame.
FIRST_FRAME_JS = """() => new Promise((resolve) => {
  const tick = () => {
    const video = document.querySelector('[data-testid="remote-video"]');
    if (video && video.srcObject && video.requestVideoFrameCallback) {
      video.requestVideoFrameCallback(() => resolve(Date.now()));
    } else {
      setTimeout(tick, 5);
    }
  };
  tick();
})"""


def path_taken(stats: dict[str, Any]) -> str:
    """The customer page's selected pair as "type/protocol", e.g. "relay/tls" or "prflx/udp"."""
    local = stats["pair"]["local"] if stats["pair"] else {}
    return f"{local.get('type')}/{local.get('relayProtocol') or local.get('protocol')}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its threads (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_share(server_pid: int, turn_pid: int, window: float) -> dict[str, float]:
    """Percent of one core the server process (its media included) and coturn used over ``window`` seconds."""
    server_before, turn_before, started = cpu_seconds(server_pid), cpu_seconds(turn_pid), time.monotonic()
    await asyncio.sleep(window)
    elapsed = time.monotonic() - started
    return {
        "server_core_pct": round(100 * (cpu_seconds(server_pid) - server_before) / elapsed, 1),
        "coturn_core_pct": round(100 * (cpu_seconds(turn_pid) - turn_before) / elapsed, 1),
    }


@asynccontextmanager
async def path_rules(lab: NetLab, path: str, server_port: int) -> AsyncIterator[None]:
    rules: list[Rule] = []
    if path == "relay-udp":
        rules.append(await lab.block(lab.phone, lab.server, proto="udp"))
    elif path in ("relay-tcp", "relay-tls"):
        turn_port = TURN_PORT if path == "relay-tcp" else TURNS_PORT
        rules.append(await lab.only_tcp(lab.phone, [(lab.server, server_port), (lab.turn, turn_port)]))
    try:
        yield
    finally:
        for rule in rules:
            await rule.remove()


async def one_call(rep: Page, customer_browser: Any, url: str, path: str) -> tuple[float, Page, dict[str, Any]]:
    """Setup time (ms) of one call on ``path``, the customer's page (still in the call) and its selected pair."""
    customer = await phone_page(
        *customer_browser, f"{url}/call", init_script=RELAY_ONLY_JS if path == "relay-udp" else None
    )
    await customer.get_by_test_id("start-call").click()
    await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
    rep_frame = asyncio.create_task(rep.evaluate(FIRST_FRAME_JS))
    customer_frame = asyncio.create_task(customer.evaluate(FIRST_FRAME_JS))
    clicked: float = await rep.evaluate("Date.now()")
    await rep.get_by_test_id("accept").click()
    frames = await asyncio.wait_for(asyncio.gather(rep_frame, customer_frame), 60.0)
    stats = await selected_pair(customer)
    return max(frames) - clicked, customer, stats


async def hang_up(rep: Page, customer: Page) -> None:
    await customer.get_by_test_id("end-call").click()
    await expect(rep.get_by_test_id("wrapup-form")).to_be_visible()
    await rep.get_by_test_id("wrapup-disposition").select_option(index=1)
    await rep.get_by_test_id("wrapup-submit").click()
    await expect(rep.get_by_test_id("availability")).to_have_attribute("data-status", "available")
    await customer.context.close()


async def measure(runs: int, window: float, folder: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with NetLab() as lab:
        ca = TestCA.make(folder / "ca")
        async with (
            Coturn(lab.turn, folder / "coturn", ca=ca) as coturn,
            rapport_in_lab(lab, folder / "rapport", ca, coturn) as rapport,
        ):
            trusted = [rapport.cert_file, coturn.cert_file]
            async with (
                chromium_in("phone", lab, folder / "phone", CUSTOMER, trusted) as customer_browser,
                chromium_in("office", lab, folder / "office", REP, trusted) as rep_browser,
            ):
                rep = await desktop_page(rep_browser.browser, f"{rapport.public_url}/console")
                await rep_login(rep)
                assert rapport.process.proc is not None and coturn.process is not None
                server_pid, turn_pid = rapport.process.proc.pid, coturn.process.pid
                for path in PATHS:
                    setups: list[float] = []
                    async with path_rules(lab, path, rapport.process.port):
                        for run in range(runs):
                            setup, customer, stats = await one_call(rep, customer_browser, rapport.public_url, path)
                            setups.append(setup)
                            taken = path_taken(stats)
                            progress(f"{path} run {run + 1}: {setup:.0f} ms via {taken}")
                            if run == runs - 1:
                                results.setdefault("cpu", {})[path] = await cpu_share(server_pid, turn_pid, window)
                            await hang_up(rep, customer)
                    results.setdefault("setup_ms", {})[path] = {
                        "runs": [round(s) for s in setups],
                        "median": round(statistics.median(setups)),
                        "path": taken,
                    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="calls per path")
    parser.add_argument("--window", type=float, default=10.0, help="seconds of CPU sampling per path")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not in_private_netns():
        sys.exit("run inside a private network namespace (see the docstring)")
    with tempfile.TemporaryDirectory(prefix="rapport-bench-networks-") as tmp:
        figures = asyncio.run(measure(args.runs, args.window, Path(tmp)))
    report = {"machine": machine(), "revision": source_revision(), **figures}
    print(json.dumps(report, indent=2))
    print()
    print("| path | selected pair | call setup, median (runs) | server CPU | coturn CPU |")
    print("| --- | --- | --- | --- | --- |")
    for path in PATHS:
        setup, cpu = figures["setup_ms"][path], figures["cpu"][path]
        runs = ", ".join(str(r) for r in setup["runs"])
        print(
            f"| {path} | {setup['path']} | {setup['median']} ms ({runs}) | {cpu['server_core_pct']} % of a core "
            f"| {cpu['coturn_core_pct']} % |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
