"""Real Chromium on both ends of a forwarded call: the picture never freezes, and heals at a keyframe.

The server forwards the browsers' own VP8 (no decoding, no re-encoding). Over
20 seconds the rep's decoder must get new frames every second. Then real video
RTP packets are lost for good (each one and every retransmission of it), on each
leg in turn:

- customer to server: the server's receiver skips the hole and asks the customer's browser for a keyframe;
- server to rep: the rep's browser cannot decode past the hole and sends a PLI, which the server relays
  to the customer's browser (nothing else would ever send the rep a keyframe).

Either way the rep's picture must come back, in the customer's colour, from a new keyframe.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Page

from server.media.peers import ServerPeer
from tests.support.browser import (
    CUSTOMER,
    REP,
    assert_sees_and_hears,
    chromium_per_side,
    colour_distance,
    console_and_phone,
    decoded_frames,
    wait_frames_grow,
    wait_remote_colour,
)
from tests.support.clients import RtpBurstLoss
from tests.support.server import Rapport

pytestmark = [pytest.mark.browser, pytest.mark.webrtc]

# Sums a counter over the page's video RTP streams of one type (e.g. "inbound-rtp", "keyFramesDecoded").
VIDEO_STAT_JS = """async ([type, names]) => {
  const stats = await window.rapport.pc.getStats();
  let n = 0;
  stats.forEach((s) => {
    if (s.type === type && s.kind === "video") for (const name of names) n += s[name] || 0;
  });
  return n;
}"""

HEAL_DEADLINE_MS = 10_000  # a hang guard: an unhealed picture stays frozen (Chromium sends no periodic keyframes)


async def video_stat(page: Page, rtp_type: str, *names: str) -> int:
    return int(await page.evaluate(VIDEO_STAT_JS, [rtp_type, list(names)]))


class LostVideo(RtpBurstLoss):
    """``RtpBurstLoss`` on the server's side of a browser's call: ``incoming`` loses what reaches the server from
    the participant, ``outgoing`` what the server sends them."""

    def __init__(self, peer: ServerPeer, direction: str) -> None:
        answer = peer.pc.localDescription
        assert answer is not None, "negotiate first"
        if direction == "incoming":
            transport = next(r for r in peer.pc.getReceivers() if r.track.kind == "video").transport
        else:
            transport = next(s for s in peer.senders if s.kind == "video").transport
        super().__init__(answer.sdp, direction, transport)


async def lose_a_burst_and_heal(rep: Page, customer: Page, loss: LostVideo, leg: str, *, rep_notices: bool) -> None:
    """Lose 15 packets of the customer's video on ``leg``; the rep's picture must come back from a keyframe the
    customer sent.

    ``rep_notices``: the hole reaches the rep's browser, which must ask for the keyframe itself (relayed upstream).
    """
    await asyncio.sleep(0.6)  # past the server's keyframe-request throttle
    asked_of_customer = await video_stat(customer, "outbound-rtp", "pliCount", "firCount")
    asked_by_rep = await video_stat(rep, "inbound-rtp", "pliCount", "firCount")
    keyframes = await video_stat(rep, "inbound-rtp", "keyFramesDecoded")

    loss.lose_next(15)
    await loss.wait_burst()
    after_burst = await decoded_frames(rep)
    try:
        await wait_frames_grow(rep, after_burst + 30, timeout_ms=HEAL_DEADLINE_MS)
    except Exception as exc:  # Playwright's TimeoutError: say what froze
        frozen_at = await decoded_frames(rep)
        raise AssertionError(
            f"{leg}: the rep's picture did not recover from the loss: {frozen_at - after_burst} frames decoded "
            f"since ({loss.retransmissions_lost} retransmissions lost too)"
        ) from exc

    if rep_notices:
        assert await video_stat(rep, "inbound-rtp", "pliCount", "firCount") > asked_by_rep, (
            f"{leg}: the rep's browser never asked for a keyframe: the loss did not reach it, or NACK repaired it"
        )
    assert await video_stat(customer, "outbound-rtp", "pliCount", "firCount") > asked_of_customer, (
        f"{leg}: the customer's browser was never asked for a keyframe"
    )
    assert await video_stat(rep, "inbound-rtp", "keyFramesDecoded") > keyframes, (
        f"{leg}: the rep decoded no new keyframe"
    )
    colour = await wait_remote_colour(rep, CUSTOMER)
    assert colour is not None and colour_distance(colour, CUSTOMER.rgb) < 40, (
        f"{leg}: after the loss the rep should see the customer's colour {CUSTOMER.rgb}, saw {colour}"
    )


async def test_chromium_decodes_the_forwarded_stream_without_freezing_and_heals_after_loss(
    served: Rapport,
    tmp_path: Path,
) -> None:
    # One Chromium per side (fake capture is per process), each with its own colour and tone.
    async with chromium_per_side(tmp_path) as (customer_side, rep_side):
        rep, customer = await console_and_phone(served.url, rep_side, customer_side)
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

        customer_peer, rep_peer = live.media.peers["customer"], live.media.peers["rep"]
        assert customer_peer is not None and rep_peer is not None
        # Lost between the customer and the server: the server asks the customer's browser for a keyframe.
        await lose_a_burst_and_heal(
            rep, customer, LostVideo(customer_peer, "incoming"), "customer to server", rep_notices=False
        )
        # Lost between the server and the rep: the rep's browser asks, and the server relays it to the customer.
        await lose_a_burst_and_heal(rep, customer, LostVideo(rep_peer, "outgoing"), "server to rep", rep_notices=True)
