"""Real Chromium on both ends of a forwarded call: the picture never freezes, and heals at a keyframe.

The server forwards the browsers' own VP8 RTP packets (no decoding, no re-encoding, no re-packetisation). Over
60 seconds the rep's decoder must get new frames every second. Then single packets are lost on the way to the rep
(their first transmission only): the rep's browser NACKs them and the server answers from its cache. Then real
video RTP packets are lost for good (each one and every retransmission of it), on each leg in turn:

- customer to server: the server's receiver skips the hole and asks the customer's browser for a keyframe;
- server to rep: the rep's browser cannot decode past the hole and sends a PLI, which the server relays
  to the customer's browser (nothing else would ever send the rep a keyframe).

Either way the rep's picture must come back, in the customer's colour, from a new keyframe. Last, the customer
flips the camera (the page replaces its video track, as call.js does): the rep sees the new camera's colour, and
the stream's sequence numbers run on, so the picture never stalls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import Page

from server.media.forwarding import RtpFeedTrack
from server.media.peers import ServerPeer
from tests.support.browser import (
    CUSTOMER,
    REP,
    Side,
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

# What the customer's other camera shows: a canvas painted green, put in place by replaceTrack as call.js flips.
# Chromium's canvas capture stretches the painted (40, 200, 60) to about (45, 243, 59) on the way to the encoder.
PAINTED = (40, 200, 60)
FLIPPED = Side("customer's other camera", (45, 243, 59), CUSTOMER.tone_hz)
FLIP_CAMERA_JS = """async (rgb) => {
  const canvas = Object.assign(document.createElement("canvas"), { width: 320, height: 240 });
  const context = canvas.getContext("2d");
  const paint = () => { context.fillStyle = `rgb(${rgb.join(",")})`; context.fillRect(0, 0, 320, 240); };
  paint();
  window.__flipPainter = setInterval(paint, 33);
  const [track] = canvas.captureStream(30).getVideoTracks();
  const sender = window.rapport.pc.getSenders().find((s) => s.track && s.track.kind === "video");
  await sender.replaceTrack(track);
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


class LostOnce:
    """The first transmission of every ``every``-th video packet the server sends the rep is lost (a
    retransmission gets through): what NACK repairs."""

    def __init__(self, peer: ServerPeer, every: int, count: int) -> None:
        sender = next(s for s in peer.senders if s.kind == "video")
        self.transport = sender.transport
        self.lost = 0
        self._count = count
        self._seen = 0
        send_rtp = self.transport._send_rtp
        self._send_rtp = send_rtp
        ssrc = sender._ssrc

        async def lossy(data: bytes) -> None:
            if len(data) > 12 and not 192 <= data[1] <= 223 and int.from_bytes(data[8:12], "big") == ssrc:
                self._seen += 1
                if self.lost < self._count and self._seen % every == 0:
                    self.lost += 1
                    return
            await send_rtp(data)

        self.transport._send_rtp = lossy

    def stop(self) -> None:
        self.transport._send_rtp = self._send_rtp


async def frames_in_windows(page: Page, windows: int) -> list[int]:
    """Frames the page's remote video decoded in each of ``windows`` one-second windows."""
    per_second = []
    for _ in range(windows):
        before = await decoded_frames(page)
        await page.wait_for_timeout(1000)
        per_second.append(await decoded_frames(page) - before)
    return per_second


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

        per_second = await frames_in_windows(rep, 60)
        assert min(per_second) > 0, f"the picture froze: frames per second {per_second}"
        assert sum(per_second) / 60 >= 20, per_second

        customer_peer, rep_peer = live.media.peers["customer"], live.media.peers["rep"]
        assert customer_peer is not None and rep_peer is not None
        # Single packets lost on the way to the rep: the rep's browser NACKs, the server resends from its cache.
        stream = next(s.track for s in rep_peer.senders if isinstance(s.track, RtpFeedTrack) and s.kind == "video")
        nacks, resent = await video_stat(rep, "inbound-rtp", "nackCount"), stream.retransmitted
        lost_once = LostOnce(rep_peer, every=40, count=10)
        frames = await decoded_frames(rep)
        await wait_frames_grow(rep, frames + 150, timeout_ms=30_000)
        lost_once.stop()
        assert lost_once.lost > 0
        assert await video_stat(rep, "inbound-rtp", "nackCount") > nacks, "the rep's browser never sent a NACK"
        assert stream.retransmitted > resent, "the server answered no NACK from its cache"

        # Lost between the customer and the server: the server asks the customer's browser for a keyframe.
        await lose_a_burst_and_heal(
            rep, customer, LostVideo(customer_peer, "incoming"), "customer to server", rep_notices=False
        )
        # Lost between the server and the rep: the rep's browser asks, and the server relays it to the customer.
        await lose_a_burst_and_heal(rep, customer, LostVideo(rep_peer, "outgoing"), "server to rep", rep_notices=True)

        # The customer flips the camera: the rep sees the other camera, and the picture does not stall.
        await customer.evaluate(FLIP_CAMERA_JS, list(PAINTED))
        colour = await wait_remote_colour(rep, FLIPPED)
        assert colour is not None and colour_distance(colour, FLIPPED.rgb) < 40, (
            f"after the flip the rep should see {FLIPPED.rgb}, saw {colour}"
        )
        per_second = await frames_in_windows(rep, 5)
        assert min(per_second) > 0, f"the picture froze after the flip: frames per second {per_second}"
