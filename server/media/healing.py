"""Whole frames from RTP after a loss: a video jitter buffer that gives up on a lost packet, and keyframes.

aiortc's video receiver waits for a missing packet until 512 newer ones have arrived (about 17 s of a still
picture), and the picture freezes all that time whenever NACK cannot repair a loss.
:class:`GapHealingJitterBuffer` skips the hole after :data:`GAP_GIVE_UP_S` and asks the sender for a keyframe
instead. The transcoding path's video receivers get it (:func:`give_up_on_lost_packets`), and so does the
forwarding path's frame branch (a recorder's, the cues' decoder's: ``forwarding.FrameAssembler``).
"""

from __future__ import annotations

import time

import av
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from . import seams

# Past a NACK round trip on any usable network: a packet missing this long is not coming.
GAP_GIVE_UP_S = 0.5
VIDEO_JITTER_CAPACITY = 512  # aiortc's own: room for the largest keyframe


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
    setattr(receiver, seams.RECEIVER_JITTER_BUFFER, GapHealingJitterBuffer())
