"""Firefox ESR (Debian's, headless, default prefs) in calls with Chromium, as the customer and as the rep.

Firefox with default prefs hides its host addresses behind mDNS names (``<uuid>.local``) and ends its offer with
``a=end-of-candidates``. The server's aioice could resolve none of those names (a server is never on the
browser's link), dropped the ICE component they were for, gathered no candidates of its own, and answered with
none: neither side had anything to check, and no media ever flowed. server/media/remote_candidates.py leaves
such candidates out of the offer; the browser's checks then reach the server's candidates and the server learns
the browser's address from them (peer-reflexive).

Each side sends its own colour and tone (Firefox's through tests/support/firefox.py's test camera and fake
microphone, Chromium's from its y4m and wav), and each page must show the other's colour. Chromium must hear the
other's tone; headless Firefox cannot analyse what it hears (no sound device, so no running AudioContext) and must
play sound of the other side at a level getStats() reports.

Firefox offers VP8, VP9 and AV1 (no H.264 without the OpenH264 plugin, which a fresh Debian profile lacks) with
payload types and RTX of its own. The server forwards each side's encoded video to the other, so both sides must
be on one codec that both have: VP8, even when the side that negotiates first prefers H.264.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import (
    CUSTOMER,
    REP,
    Chromium,
    Side,
    assert_sees_and_hears,
    colour_distance,
    desktop_page,
    phone_page,
    rep_login,
    wait_frames_grow,
    wait_remote_colour,
)
from tests.support.coturn import TestCA
from tests.support.firefox import FirefoxPage, as_page, firefox_in, wait_painted_frames, wait_remote_audio_level
from tests.support.lab_calls import LabRapport, chromium_in, rapport_in_lab
from tests.support.netlab import NetLab
from tests.support.server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# The Firefox customer's second camera (the one facing away): far from both sides' colours.
BACK_CAMERA = Side("customer's back camera", (40, 200, 70), CUSTOMER.tone_hz)

# The codecs the page's video RTP streams use, as getStats() names them: {"inbound": [...], "outbound": [...]}.
VIDEO_CODECS_JS = """async () => {
  const stats = await window.rapport.pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  const out = { inbound: [], outbound: [] };
  stats.forEach((s) => {
    if (s.kind !== "video" || !s.codecId) return;
    const codec = byId.get(s.codecId);
    if (s.type === "inbound-rtp") out.inbound.push(codec && codec.mimeType);
    if (s.type === "outbound-rtp") out.outbound.push(codec && codec.mimeType);
  });
  return out;
}"""

# Test-side: the customer's browser offers H.264 before VP8, as Safari does (and Chromium on some phones).
PREFER_H264_JS = """(() => {
  const addTransceiver = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function (...args) {
    const transceiver = addTransceiver.apply(this, args);
    if (transceiver.receiver.track.kind === "video") {
      const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
      const h264 = (c) => c.mimeType === "video/H264";
      transceiver.setCodecPreferences([...codecs.filter(h264), ...codecs.filter((c) => !h264(c))]);
    }
    return transceiver;
  };
})();"""

# Test-side: the Firefox rep's page holds its offer until the test calls window.releaseOffer(), so that the
# customer's negotiation (which picks the call's video codec) comes first.
HOLD_OFFER_JS = """() => {
  let release;
  const held = new Promise((resolve) => (release = resolve));
  window.releaseOffer = release;
  const setLocalDescription = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = async function (...args) {
    await held;
    return setLocalDescription.apply(this, args);
  };
}"""

LOCAL_SDP_JS = "() => window.rapport.pc && window.rapport.pc.localDescription && window.rapport.pc.localDescription.sdp"

# The local description once gathering is complete: the other side can be "in-call" before this side has its
# peer connection, or before its candidates are all in its description (CI runs read none, and no description).
GATHERED_SDP_JS = """async () => {
  const until = Date.now() + 15000;
  const gathered = () => {
    const pc = window.rapport.pc;
    return pc && pc.localDescription && pc.iceGatheringState === "complete" ? pc.localDescription.sdp : null;
  };
  while (!gathered() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
  return gathered() || "";
}"""


def host_candidates(sdp: str) -> list[str]:
    """The connection addresses of the offer's UDP host candidates."""
    found = re.findall(r"^a=candidate:\S+ \d+ UDP \d+ (\S+) \d+ typ host", sdp, flags=re.MULTILINE | re.IGNORECASE)
    return list(found)


def assert_hides_its_addresses(offer: str) -> None:
    """The configuration under test: Firefox's default, every host candidate an mDNS name, end-of-candidates."""
    hosts = host_candidates(offer)
    assert hosts and all(h.endswith(".local") for h in hosts), f"Firefox's offer shows its host addresses: {hosts}"
    assert "a=end-of-candidates" in offer, "Firefox's offer no longer ends its candidates"


async def video_codecs(page: Page | FirefoxPage) -> dict[str, Any]:
    value: dict[str, Any] = await page.evaluate(VIDEO_CODECS_JS)
    return value


def assert_vp8_both_ways(codecs: dict[str, Any], who: str) -> None:
    assert codecs["inbound"] == ["video/VP8"] and codecs["outbound"] == ["video/VP8"], f"{who}: {codecs}"


async def assert_sees_and_hears_sound(page: FirefoxPage, viewer: Side, sender: Side) -> None:
    """The Firefox ``viewer``'s page shows ``sender``'s colour, not its own, and plays sound (how loud, not which
    pitch: see tests/support/firefox.py's REMOTE_AUDIO_LEVEL_JS)."""
    colour = await wait_remote_colour(as_page(page), sender)
    assert colour is not None, f"the {viewer.name}'s Firefox shows no remote picture"
    assert colour_distance(colour, sender.rgb) < 40, (
        f"the {viewer.name} should see the {sender.name}'s colour {sender.rgb}, saw {colour}"
    )
    assert colour_distance(colour, viewer.rgb) > 150, f"the {viewer.name} sees its own colour {viewer.rgb}: {colour}"
    level = await wait_remote_audio_level(page, 0.1)
    assert level is not None and level >= 0.1, (
        f"the {viewer.name}'s Firefox plays no sound from the {sender.name}: {level}"
    )


async def firefox_rep_login(page: FirefoxPage, username: str = "rep1", password: str = PASSWORD) -> None:
    await page.fill("login-username", username)
    await page.fill("login-password", password)
    await page.click("login-submit")
    assert await page.wait_for("() => document.body.dataset.state === 'queue'"), await page.state()
    available = "() => document.querySelector('[data-testid=availability]').dataset.status === 'available'"
    # The console shows the queue before its socket has its welcome, and a click before then only toasts "not
    # connected". Marionette clicks that fast (Playwright, a person, never did): click again after a pause.
    for _ in range(3):
        await page.click("availability")
        if await page.wait_for(available, timeout_s=3.0):
            return
    raise AssertionError("the Firefox rep could not become available")


async def firefox_rep_at(rep: FirefoxPage, rapport_url: str) -> None:
    """The Firefox rep's console, logged in and available, its camera showing the rep's colour."""
    await rep.goto(f"{rapport_url}/console")
    await firefox_rep_login(rep)
    await rep.use_test_camera([REP], REP)


@asynccontextmanager
async def chromium_customer_and_firefox_rep(
    lab: NetLab, test_ca: TestCA, tmp_path: Path
) -> AsyncIterator[tuple[LabRapport, Chromium, FirefoxPage]]:
    """The server, a Chromium in the phone, and a Firefox rep in the office at the console, available."""
    async with (
        rapport_in_lab(lab, tmp_path / "rapport", test_ca, None) as rapport,
        chromium_in("phone", lab, tmp_path / "phone", CUSTOMER, [rapport.cert_file]) as customer_side,
        firefox_in(lab.office, tmp_path / "office") as firefox,
    ):
        await firefox_rep_at(firefox.page, rapport.public_url)
        yield rapport, customer_side, firefox.page


async def firefox_rep_accepts(rep: FirefoxPage, customer: Page) -> None:
    """The customer calls; the call reaches the Firefox rep's queue and the rep accepts it."""
    await customer.get_by_test_id("start-call").click()
    queued = "() => document.querySelectorAll('[data-testid=queue-item]').length === 1"
    assert await rep.wait_for(queued), "the call never reached the Firefox rep's queue"
    await rep.click("accept")


async def test_a_firefox_customer_and_a_chromium_rep_see_and_hear_each_other_and_the_camera_switches(
    lab: NetLab, test_ca: TestCA, tmp_path: Path
) -> None:
    async with (
        rapport_in_lab(lab, tmp_path / "rapport", test_ca, None) as rapport,
        chromium_in("office", lab, tmp_path / "office", REP, [rapport.cert_file]) as rep_side,
        firefox_in(lab.phone, tmp_path / "phone") as firefox,
    ):
        rep = await desktop_page(rep_side.browser, f"{rapport.public_url}/console")
        await rep_login(rep)
        customer = firefox.page
        await customer.goto(f"{rapport.public_url}/call")
        assert await customer.wait_for("() => document.body.dataset.state === 'start'"), await customer.state()
        await customer.use_test_camera([CUSTOMER, BACK_CAMERA], CUSTOMER)
        await customer.click("start-call")
        await expect(rep.get_by_test_id("queue-item")).to_have_count(1)
        await rep.get_by_test_id("accept").click()
        assert await customer.wait_for("() => document.body.dataset.state === 'in-call'"), await customer.state()

        assert_hides_its_addresses(await customer.evaluate(GATHERED_SDP_JS))
        await wait_frames_grow(rep, 30)
        painted = await wait_painted_frames(customer, 30)
        assert painted >= 30, f"Firefox painted {painted} frames of the rep's video"
        await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER)
        await assert_sees_and_hears_sound(customer, viewer=CUSTOMER, sender=REP)
        assert_vp8_both_ways(await video_codecs(customer), "the Firefox customer")
        assert_vp8_both_ways(await video_codecs(rep), "the Chromium rep")

        # The other camera (replaceTrack, no new offer): the rep sees its colour from now on.
        await customer.click("flip-camera")
        colour = await wait_remote_colour(rep, BACK_CAMERA)
        assert colour is not None and colour_distance(colour, BACK_CAMERA.rgb) < 40, (
            f"after the switch the rep should see the back camera's {BACK_CAMERA.rgb}, saw {colour}"
        )
        facing = await customer.evaluate(
            "() => window.rapport.pc.getSenders().find((s) => s.track && "
            "s.track.kind === 'video').track.getSettings().facingMode"
        )
        assert facing == "environment", facing


async def test_a_chromium_customer_and_a_firefox_rep_see_and_hear_each_other(
    lab: NetLab, test_ca: TestCA, tmp_path: Path
) -> None:
    async with chromium_customer_and_firefox_rep(lab, test_ca, tmp_path) as (rapport, customer_side, rep):
        customer = await phone_page(*customer_side, f"{rapport.public_url}/call")
        await firefox_rep_accepts(rep, customer)
        await expect(customer.locator("body")).to_have_attribute("data-state", "in-call")

        assert_hides_its_addresses(await rep.evaluate(GATHERED_SDP_JS))
        await wait_frames_grow(customer, 30)
        painted = await wait_painted_frames(rep, 30)
        assert painted >= 30, f"Firefox painted {painted} frames of the customer's video"
        await assert_sees_and_hears_sound(rep, viewer=REP, sender=CUSTOMER)
        await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)
        assert_vp8_both_ways(await video_codecs(rep), "the Firefox rep")
        assert_vp8_both_ways(await video_codecs(customer), "the Chromium customer")


async def test_a_customer_preferring_h264_and_a_firefox_rep_without_it_meet_on_vp8(
    lab: NetLab, test_ca: TestCA, tmp_path: Path
) -> None:
    # Firefox from Debian offers no H.264 (no OpenH264 plugin): a call whose video codec followed the customer's
    # first choice, H.264, would forward what the rep cannot decode. VP8, which every browser has, must win.
    async with chromium_customer_and_firefox_rep(lab, test_ca, tmp_path) as (rapport, customer_side, rep):
        await rep.evaluate(HOLD_OFFER_JS)
        customer = await phone_page(*customer_side, f"{rapport.public_url}/call", init_script=PREFER_H264_JS)
        await firefox_rep_accepts(rep, customer)
        await customer.wait_for_function("() => window.rapport.pc && window.rapport.pc.connectionState === 'connected'")
        offer = await customer.evaluate(LOCAL_SDP_JS)
        first_video_payload = re.search(r"^m=video \S+ \S+ (\d+)", offer, flags=re.MULTILINE)
        assert first_video_payload is not None
        assert re.search(rf"^a=rtpmap:{first_video_payload.group(1)} H264/", offer, flags=re.MULTILINE), (
            "the customer's offer does not put H.264 first"
        )
        await rep.evaluate("() => window.releaseOffer()")

        await wait_frames_grow(customer, 30)
        painted = await wait_painted_frames(rep, 30)
        assert painted >= 30, f"Firefox painted {painted} frames of the customer's video"
        await assert_sees_and_hears_sound(rep, viewer=REP, sender=CUSTOMER)
        await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)
        assert_vp8_both_ways(await video_codecs(customer), "the customer preferring H.264")
        assert_vp8_both_ways(await video_codecs(rep), "the Firefox rep")
