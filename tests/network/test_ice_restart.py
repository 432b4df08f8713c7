"""A phone that moves from Wi-Fi to mobile data mid-call: its address changes, every socket it had is gone
(its relay allocations with them), and the new network drops UDP to the server. The customer page notices its
connection failing, offers again on a new connection (with fresh TURN credentials if its signalling socket
reconnected), and the call comes back through coturn, with each side seeing the other's picture moving again.

Cutting the direct path alone is not enough to test that: Chromium then moves to the relay pair it already
gathered, inside the same ICE session, without any offer (seen here), which works too."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.support.browser import CUSTOMER, REP, assert_sees_and_hears
from tests.support.coturn import Coturn, TestCA
from tests.support.lab_calls import call_through_the_lab, chromium_in, rapport_in_lab, selected_pair
from tests.support.netlab import NetLab

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# Counts the frames the page's remote video presents, across every stream it is given.
COUNT_FRAMES_JS = """() => {
  window.__presented = 0;
  const video = document.querySelector('[data-testid="remote-video"]');
  const count = () => { window.__presented += 1; video.requestVideoFrameCallback(count); };
  video.requestVideoFrameCallback(count);
}"""


async def presented(page: Page) -> int:
    return int(await page.evaluate("window.__presented"))


async def frames_flow(page: Page, window_s: float = 1.0) -> bool:
    before = await presented(page)
    await asyncio.sleep(window_s)
    return await presented(page) > before + 5


async def test_the_call_comes_back_through_turn_when_the_direct_path_is_cut(
    lab: NetLab, coturn: Coturn, test_ca: TestCA, tmp_path: Path
) -> None:
    async with (
        rapport_in_lab(lab, tmp_path / "rapport", test_ca, coturn) as rapport,
        chromium_in("phone", lab, tmp_path / "phone", CUSTOMER, [rapport.cert_file]) as customer_side,
        chromium_in("office", lab, tmp_path / "office", REP, [rapport.cert_file]) as rep_side,
    ):
        rep, customer = await call_through_the_lab(rapport, customer_side, rep_side)
        before = await selected_pair(customer)
        # Direct first: the phone reaches the server's announced address over UDP, no relay involved.
        assert before["pair"] is not None and before["pair"]["local"]["type"] != "relay", before
        assert before["pair"]["remote"]["address"] == lab.server.public, before
        for page in (rep, customer):
            await page.evaluate(COUNT_FRAMES_JS)
            assert await frames_flow(page)

        pc_before = await customer.evaluate("window.__pcBefore = window.rapport.pc, true")
        assert pc_before
        # Mobile data: a second interface with an address of its own comes up, Wi-Fi goes away with every
        # socket on it, and the carrier drops UDP from the new address to the server (the relay stays reachable).
        mobile = "10.13.99.2"
        await lab.rule(
            "mobile-data",
            [f"ip saddr {mobile} ip daddr {{ {lab.server.address}, {lab.server.public} }} meta l4proto udp drop"],
        )

        def hand_over() -> None:
            subprocess.run(
                [
                    "ip",
                    "link",
                    "add",
                    "lab-mobile",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "rmnet0",
                    "netns",
                    str(lab.phone.pid),
                ],
                check=True,
            )
            subprocess.run(["ip", "addr", "add", "10.13.99.1/24", "dev", "lab-mobile"], check=True)
            subprocess.run(["ip", "link", "set", "lab-mobile", "up"], check=True)
            for argv in (
                ["ip", "addr", "add", f"{mobile}/24", "dev", "rmnet0"],
                ["ip", "link", "set", "rmnet0", "up"],
                ["ip", "link", "set", "eth0", "down"],
                ["ip", "route", "replace", "default", "via", "10.13.99.1", "src", mobile],
            ):
                lab.phone.check(argv)

        await asyncio.to_thread(hand_over)
        deadline = time.monotonic() + 45.0
        while True:
            after = await selected_pair(customer)
            pair = after["pair"]
            relayed = pair is not None and pair["state"] == "succeeded" and pair["local"]["type"] == "relay"
            if relayed and await frames_flow(rep) and await frames_flow(customer):
                break
            assert time.monotonic() < deadline, f"no media through the relay after the cut: {after}"
            await asyncio.sleep(0.5)
        # A new connection, not the old one carried over.
        assert await customer.evaluate("window.rapport.pc !== window.__pcBefore")
        assert pair is not None and pair["local"]["address"] == lab.turn.public, after
        # Still the other side's picture and tone on each page, now moving through coturn.
        await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)
        await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER)
