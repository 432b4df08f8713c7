"""RTP-level forwarding, the pure part: where a keyframe starts, and how one outgoing stream is numbered.

An outgoing stream (what one peer's sender sends of a participant's feed) is a run of *segments*, each the
packets of one source (a participant's receiver and SSRC) from one starting packet on. A segment begins at a
keyframe (video) or at once (audio), on a new source (a reconnect, a re-offer, a new SSRC) or after the stream
had to stop (a supervisor's gate closed, a sender that was not ready). Inside a segment a packet's sequence
number and timestamp move by the segment's offsets, so the outgoing sequence numbers run on without a gap and
the timestamps keep rising across every switch, whatever the sources' own numbers were.

Sent packets stay in a ring (:class:`RetransmissionCache`) to answer NACKs; a sequence number that fell out of
it is mapped back to the source's (:meth:`StreamRewriter.upstream_seq`) and asked of the source instead.

Hostile payloads never raise here: a packet whose payload cannot be what its codec says is "malformed" (None).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
HALF_SEQ = 1 << 15
CACHE_SIZE = 1024  # about 8 s of 640x480 video, 20 s of audio: far past any NACK worth answering
MIN_SWITCH_GAP_S = 0.02  # a switch moves the timestamps on by at least one frame or audio packet


def vp8_keyframe_start(payload: bytes) -> bool | None:
    """Whether this VP8 RTP payload (RFC 7741) is the first packet of a key frame; None if it is malformed."""
    size = len(payload)
    if size < 1:
        return None
    first = payload[0]
    index = 1
    if first & 0x80:  # X: extension byte
        if size < 2:
            return None
        ext = payload[1]
        index = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if size <= index:
                return None
            index += 2 if payload[index] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            index += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            index += 1
    if size <= index:
        return None  # a descriptor and nothing after it
    if not first & 0x10 or first & 0x07:
        return False  # not the start of partition 0: a continuation
    return not payload[index] & 0x01  # the VP8 frame tag's P bit is 0 on a key frame (RFC 6386 9.1)


IDR, SPS = 5, 7
STAP_A, FU_A = 24, 28


def h264_keyframe_start(payload: bytes) -> bool | None:
    """Whether this H.264 RTP payload (RFC 6184, packetization mode 1) begins an IDR picture: an SPS or IDR
    NAL unit alone, in a STAP-A, or as an FU-A's first fragment. None if malformed."""
    if not payload or payload[0] & 0x80:  # forbidden_zero_bit
        return None
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return nal_type in (IDR, SPS)
    if nal_type == STAP_A:
        index, found, size = 1, False, len(payload)
        if size < 3:
            return None
        while index < size:
            if index + 2 > size:
                return None
            length = (payload[index] << 8) | payload[index + 1]
            index += 2
            if length == 0 or index + length > size or payload[index] & 0x80:
                return None
            found = found or (payload[index] & 0x1F) in (IDR, SPS)
            index += length
        return found
    if nal_type == FU_A:
        if len(payload) < 3:
            return None
        header = payload[1]
        if header & 0x80 and header & 0x40:
            return None  # start and end of one fragment at once
        return bool(header & 0x80) and (header & 0x1F) in (IDR, SPS)
    return None  # STAP-B, MTAP, FU-B and the reserved types: not in packetization mode 1


def keyframe_start(codec: str, payload: bytes) -> bool | None:
    """``codec`` is the lower-case codec name; audio packets each stand on their own."""
    if codec == "vp8":
        return vp8_keyframe_start(payload)
    if codec == "h264":
        return h264_keyframe_start(payload)
    return True if payload else None


def seq_newer(a: int, b: int) -> bool:
    """``a`` comes after ``b`` (RFC 1982 serial numbers over 16 bits)."""
    return a != b and ((a - b) % SEQ_MOD) < HALF_SEQ


@dataclass
class SentPacket:
    """What a retransmission needs of a sent packet (the header fields as sent, and the payload)."""

    sequence_number: int
    timestamp: int
    marker: int
    payload: bytes
    audio_level: Any = None  # the source's ssrc-audio-level extension, for audio


class RetransmissionCache:
    """The last ``size`` packets sent on one outgoing stream, by their outgoing sequence number."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._ring: list[SentPacket | None] = [None] * size
        self.hits = 0
        self.misses = 0

    def put(self, packet: SentPacket) -> None:
        self._ring[packet.sequence_number % self.size] = packet

    def get(self, sequence_number: int) -> SentPacket | None:
        found = self._ring[sequence_number % self.size]
        if found is not None and found.sequence_number == sequence_number:
            self.hits += 1
            return found
        self.misses += 1
        return None

    def clear(self) -> None:
        self._ring = [None] * self.size


class StreamRewriter:
    """Sequence numbers and timestamps of one outgoing stream across its segments.

    ``rewrite`` answers the outgoing (sequence number, timestamp) of an incoming packet, or None to drop it:
    before the first keyframe of a video segment, or older than the segment's first packet (a late packet of
    what came before). ``restart()`` makes the next packet begin a new segment (at a keyframe, for video).
    """

    def __init__(self, kind: str, clock_rate: int, *, first_seq: int | None = None, first_ts: int | None = None):
        self.kind = kind
        self.clock_rate = clock_rate
        # Below 2^15 like aiortc's: a wrap early in the stream trips some SRTP implementations.
        self._first_seq = random.randrange(HALF_SEQ) if first_seq is None else first_seq % SEQ_MOD
        self._first_ts = random.randrange(TS_MOD) if first_ts is None else first_ts % TS_MOD
        self.source: object = None
        self.waiting = True  # for the first packet of a new segment
        self._seq_offset = 0
        self._ts_offset = 0
        self._segment_first_in = 0
        self._segment_first_out = 0
        self.highest_seq: int | None = None  # outgoing
        self.last_ts: int | None = None  # outgoing, of the highest packet
        self._last_wall = 0.0
        self.segments = 0
        self.dropped = 0

    def restart(self) -> None:
        self.waiting = True

    def rewrite(self, source: object, seq: int, ts: int, keyframe: bool, now: float) -> tuple[int, int] | None:
        if self.waiting or source is not self.source:
            if self.kind == "video" and not keyframe:
                self.waiting = True
                self.dropped += 1
                return None
            self._begin(source, seq, ts, now)
        elif not (seq == self._segment_first_in or seq_newer(seq, self._segment_first_in)):
            self.dropped += 1  # from before this segment began
            return None
        out_seq = (seq + self._seq_offset) % SEQ_MOD
        out_ts = (ts + self._ts_offset) % TS_MOD
        if self.highest_seq is None or seq_newer(out_seq, self.highest_seq):
            self.highest_seq, self.last_ts, self._last_wall = out_seq, out_ts, now
        return out_seq, out_ts

    def _begin(self, source: object, seq: int, ts: int, now: float) -> None:
        if self.highest_seq is None or self.last_ts is None:
            out_seq, out_ts = self._first_seq, self._first_ts
        else:
            out_seq = (self.highest_seq + 1) % SEQ_MOD
            # Leave the real time between the last packet out and this one (at least a frame's worth).
            elapsed = max(now - self._last_wall, MIN_SWITCH_GAP_S)
            out_ts = (self.last_ts + int(elapsed * self.clock_rate)) % TS_MOD
        self._seq_offset = (out_seq - seq) % SEQ_MOD
        self._ts_offset = (out_ts - ts) % TS_MOD
        self._segment_first_in, self._segment_first_out = seq, out_seq
        self.source = source
        self.waiting = False
        self.segments += 1

    def upstream_seq(self, out_seq: int) -> int | None:
        """The source's sequence number of an outgoing one, if it belongs to the current segment."""
        if self.waiting or self.highest_seq is None:
            return None
        first, highest = self._segment_first_out, self.highest_seq
        if not (out_seq == first or seq_newer(out_seq, first)) or seq_newer(out_seq, highest):
            return None
        return (out_seq - self._seq_offset) % SEQ_MOD


class TimestampUnwrapper:
    """A source's 32-bit RTP timestamps as a count from its first one (for the frames of a recording)."""

    def __init__(self) -> None:
        self._origin = 0
        self._newest: int | None = None  # unwrapped

    def map(self, ts: int) -> int:
        if self._newest is None:
            self._origin = self._newest = ts
            return 0
        delta = (ts - self._newest) % TS_MOD
        if delta >= TS_MOD // 2:
            delta -= TS_MOD  # older than the newest (reordered, or from before a wrap)
        unwrapped = self._newest + delta
        if delta > 0:
            self._newest = unwrapped
        return unwrapped - self._origin
