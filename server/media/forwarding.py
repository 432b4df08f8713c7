"""Zero-transcode forwarding: hand received encoded frames to the other peer as ``av.Packet``.

aiortc's receiver reassembles RTP into encoded frames and gives them to a
decoder thread (``aiortc.rtcrtpreceiver.decoder_worker``) that fills the remote
track's queue with decoded frames. Its sender, given an ``av.Packet`` instead of
a frame, packetizes it as it is (what ``MediaPlayer(decode=False)`` relies on).

The seam used here: the decoder-thread function is looked up in the receiver
module when a receiver starts, with the remote track's queue as an argument.
:func:`install` puts a wrapper there that, for queues registered with
:func:`forward_track`, hands out packets instead of decoding; every other
receiver decodes as before. A receiver's track is registered from the peer's
``track`` event, which aiortc fires before the receiver starts.

Keyframe requests travel upstream: a PLI/FIR that reaches one of our senders
ends in ``RTCRtpSender._send_keyframe``, which :func:`relay_keyframe_requests`
wraps on that sender instance to call the feed's upstream request instead.

Lost packets: aiortc's video receiver waits for a missing packet until 512
newer ones have arrived (about 17 s of a still picture), and the picture
freezes all that time whenever NACK cannot repair a loss.
:func:`give_up_on_lost_packets` gives a receiver a jitter buffer that skips the
hole after :data:`GAP_GIVE_UP_S` and asks the sender for a keyframe instead.

These are aiortc 1.16 internals; ``tests/webrtc/test_forwarding.py`` pins them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import rtcrtpreceiver as _receiver_module
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from .feeds import tag_codec

log = logging.getLogger(__name__)

# Remote tracks (their queues) whose receiver forwards packets instead of decoding.
_FORWARDED: weakref.WeakKeyDictionary[asyncio.Queue[Any], str] = weakref.WeakKeyDictionary()
_installed = threading.Lock()
_original_worker: Callable[..., None] | None = None

# Past a NACK round trip on any usable network: a packet missing this long is not coming.
GAP_GIVE_UP_S = 0.5
VIDEO_JITTER_CAPACITY = 512  # aiortc's own: room for the largest keyframe


def install() -> None:
    """Put the forwarding-aware decoder worker in place (idempotent; other receivers still decode)."""
    global _original_worker
    with _installed:
        if _original_worker is not None:
            return
        _original_worker = _receiver_module.decoder_worker
        _receiver_module.decoder_worker = _worker


def forward_track(track: MediaStreamTrack) -> None:
    """From now on ``track.recv()`` returns encoded packets (call before its receiver starts)."""
    install()
    _FORWARDED[track._queue] = track.kind  # type: ignore[attr-defined]


def is_keyframe(packet: av.Packet, codec: str) -> bool:
    data = bytes(packet)
    if not data:
        return False
    if codec == "vp8":
        # RFC 6386 9.1: the frame tag's lowest bit is 0 on a key frame.
        return not data[0] & 0x01
    if codec == "h264":
        # Annex B as aiortc depayloads it: an IDR slice or a sequence parameter set starts a picture.
        for i in range(len(data) - 4):
            if data[i : i + 3] == b"\x00\x00\x01" and data[i + 3] & 0x1F in (5, 7):
                return True
        return False
    return True  # audio: every packet stands on its own


def _worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    if output_q not in _FORWARDED:
        assert _original_worker is not None
        _original_worker(loop, input_q, output_q, decode_error)
        return
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            return
        codec, encoded_frame = task
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = Fraction(1, codec.clockRate)
        # What the packet is, for sinks that need to know (recorder, decoder, keyframe gate).
        name = codec.name.lower()
        tag_codec(packet, name)
        packet.is_keyframe = is_keyframe(packet, name)
        asyncio.run_coroutine_threadsafe(output_q.put(packet), loop)


def relay_keyframe_requests(sender: RTCRtpSender, request: Callable[[], None]) -> None:
    """A keyframe asked of this sender (PLI/FIR from its receiver) is asked of the source instead."""
    original = sender._send_keyframe

    def send_keyframe() -> None:
        original()
        request()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


async def request_keyframe_from(receiver: Any) -> bool:
    """Send a PLI for every stream this receiver gets; False if there is none yet."""
    sources = receiver.getSynchronizationSources()
    for source in sources:
        await receiver._send_rtcp_pli(source.source)
    return bool(sources)


class GapHealingJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer that gives up on a lost packet after ``give_up_s``.

    It then drops what it holds up to the end of the first whole frame after the hole and
    returns the PLI flag, so the receiver asks the sender for a keyframe at once.
    """

    def __init__(self, capacity: int = VIDEO_JITTER_CAPACITY, give_up_s: float = GAP_GIVE_UP_S) -> None:
        super().__init__(capacity=capacity, is_video=True)
        self.give_up_s = give_up_s
        self.holes_skipped = 0
        self._hole_since: float | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if frame is not None or self._origin is None:
            self._hole_since = None
            return pli, frame
        newest = uint16_add(packet.sequence_number, -self._origin)
        if newest >= self._capacity:
            return pli, None  # a late packet from before the origin: nothing changed
        hole = self._hole_before(newest)
        if hole is None:
            self._hole_since = None
            return pli, None
        now = time.monotonic()
        if self._hole_since is None:
            self._hole_since = now
        skip = self._end_of_frame_after(hole, newest)
        if skip is None or now - self._hole_since < self.give_up_s:
            return pli, None
        before = self._whole_frame_before(hole)
        self.remove(skip)
        self._hole_since = None
        self.holes_skipped += 1
        return True, before if before is not None else self._remove_frame(packet.sequence_number)

    def _slot(self, index: int) -> RtpPacket | None:
        assert self._origin is not None
        return self._packets[(self._origin + index) % self._capacity]

    def _hole_before(self, newest: int) -> int | None:
        """Index of the first missing packet before the newest one, if any."""
        return next((index for index in range(newest) if self._slot(index) is None), None)

    def _whole_frame_before(self, hole: int) -> JitterFrame | None:
        """The frame held before the hole if it is whole (aiortc releases a frame only when the next begins)."""
        packets = [self._slot(index) for index in range(hole)]
        if not packets or packets[-1] is None or not packets[-1].marker:
            return None
        data = b"".join(p._data for p in packets if p is not None)  # type: ignore[attr-defined]
        return JitterFrame(data=data, timestamp=packets[0].timestamp if packets[0] else 0)

    def _end_of_frame_after(self, hole: int, newest: int) -> int | None:
        """How many slots to drop to resume at a frame start after ``hole`` (None until one is seen)."""
        for index in range(hole + 1, newest + 1):
            found = self._slot(index)
            if found is not None and found.marker:  # the marker bit ends a video frame
                return index + 1
        return None


def give_up_on_lost_packets(receiver: RTCRtpReceiver) -> None:
    """Let this video receiver skip a lost packet after GAP_GIVE_UP_S (call before it receives)."""
    receiver._RTCRtpReceiver__jitter_buffer = GapHealingJitterBuffer()  # type: ignore[attr-defined]
