"""Real Chromium on both ends of a forwarded call: the picture never freezes, and heals at a keyframe.

The server forwards the browsers' own VP8 (no decoding, no re-encoding). Over
20 seconds the rep's decoder must get new frames every second; when the
server drops forwarded video (as after a loss), it asks the customer's browser
for a keyframe and the rep's picture goes on from it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.feeds import FeedTrack
from tests.conftest import Rapport
from tests.support.browser import (
    CUSTOMER,
    REP,
    assert_sees_and_hears,
    close,
    colour_distance,
    decoded_frames,
    desktop_page,
    fake_capture,
    launch,
    phone_page,
    rep_login,
    wait_frames_grow,
    wait_remote_colour,
)

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

KEYFRAMES_JS = """async () => {
  const stats = await window.rapport.pc.getStats();
  let n = 0;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") n += s.keyFramesDecoded || 0; });
  return n;
}"""


async def test_chromium_decodes_the_forwarded_stream_without_freezing_and_heals_after_loss(
    served: Rapport,
    tmp_path: Path,
) -> None:
    # One Chromium per side (fake capture is per process), each with its own colour and tone.
    customer_chromium = await launch(*fake_capture(tmp_path, CUSTOMER))
    rep_chromium = await launch(*fake_capture(tmp_path, REP))
    try:
        rep = await desktop_page(rep_chromium[1], f"{served.url}/console")
        await rep_login(rep)
        customer = await phone_page(*customer_chromium, f"{served.url}/call")
        await customer.get_by_test_id("start-call").click()
        await rep.get_by_test_id("accept").click()
        await wait_frames_grow(rep, 30)
        live = next(iter(served.center.sessions.values()))
        assert live.media is not None and live.media.forward
        # Forwarded, not reflected: each side gets the other's picture and sound.
        await assert_sees_and_hears(rep, viewer=REP, sender=CUSTOMER)
        await assert_sees_and_hears(customer, viewer=CUSTOMER, sender=REP)

        per_second = []
        for _ in range(20):
            before = await decoded_frames(rep)
            await asyncio.sleep(1.0)
            per_second.append(await decoded_frames(rep) - before)
        assert min(per_second) > 0, f"the picture froze: frames per second {per_second}"
        assert sum(per_second) / 20 >= 20, per_second

        # A gap in what reaches the rep: the server stops forwarding until a keyframe comes.
        to_rep = next(t for t in live.media._outgoing["rep"] if isinstance(t, FeedTrack) and t.kind == "video")
        feed = to_rep.feed
        keyframes_before = int(await rep.evaluate(KEYFRAMES_JS))
        asked_before = feed.keyframes_requested
        await asyncio.sleep(0.6)  # past the keyframe-request throttle
        to_rep._need_keyframe = True
        healed = await wait_frames_grow(rep, await decoded_frames(rep) + 30, timeout_ms=10000)
        assert feed.keyframes_requested > asked_before, "the customer's browser was asked for a keyframe"
        assert int(await rep.evaluate(KEYFRAMES_JS)) > keyframes_before, "the rep decoded a new keyframe"
        assert healed > 0
        colour = await wait_remote_colour(rep, CUSTOMER)
        assert colour is not None and colour_distance(colour, CUSTOMER.rgb) < 40, colour
    finally:
        await close(customer_chromium, rep_chromium)
