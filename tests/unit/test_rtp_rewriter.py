"""RTP-level forwarding, the pure part (server/media/rtp.py): numbering across segments, keyframes, the NACK cache,
and hostile payloads that must never crash a call."""

from __future__ import annotations

import random

import pytest

from server.media.rtp import (
    RetransmissionCache,
    SentPacket,
    StreamRewriter,
    TimestampUnwrapper,
    h264_keyframe_start,
    keyframe_start,
    seq_newer,
    vp8_keyframe_start,
)

# VP8 payloads (RFC 7741): descriptor byte 0x10 = S bit, partition 0; 0x00 = a continuation.
VP8_KEY = b"\x10" + b"\x10\x02\x00\x9d\x01\x2a"  # frame tag P bit 0: a key frame
VP8_DELTA = b"\x10" + b"\x11\x02\x00"
VP8_MORE = b"\x00" + b"\x33\x44"
A, B = object(), object()  # two sources (e.g. before and after a reconnect)


def test_vp8_keyframes_from_the_payload_descriptor() -> None:
    assert vp8_keyframe_start(VP8_KEY) is True
    assert vp8_keyframe_start(VP8_DELTA) is False
    assert vp8_keyframe_start(VP8_MORE) is False, "not the start of a frame"
    assert vp8_keyframe_start(b"\x10\x01\x30") is False, "S set but partition 1"
    # X with a 15-bit picture id (I, M), TL0PICIDX (L) and TID (T): the frame tag comes after 5 bytes.
    assert vp8_keyframe_start(b"\x90\xe0\x81\x23\x05\x40" + b"\x10\x02") is True
    assert vp8_keyframe_start(b"\x90\xe0\x81\x23\x05\x40" + b"\x11\x02") is False
    assert vp8_keyframe_start(b"\x90\x80\x05" + b"\x10") is True, "a 7-bit picture id"


def test_h264_keyframes_alone_in_stap_a_and_fu_a() -> None:
    assert h264_keyframe_start(b"\x67\x42\x00\x1f") is True, "an SPS starts an IDR picture"
    assert h264_keyframe_start(b"\x65\x88\x84") is True, "an IDR slice alone"
    assert h264_keyframe_start(b"\x41\x9a\x00") is False, "a non-IDR slice"
    assert h264_keyframe_start(b"\x68\xce\x3c") is False, "a PPS alone does not start one"
    stap = b"\x18" + b"\x00\x04\x67\x42\x00\x1f" + b"\x00\x03\x68\xce\x3c"
    assert h264_keyframe_start(stap) is True, "STAP-A with SPS and PPS"
    assert h264_keyframe_start(b"\x18" + b"\x00\x02\x06\x05" + b"\x00\x02\x41\x9a") is False
    assert h264_keyframe_start(b"\x7c\x85\x88\x84") is True, "FU-A start fragment of an IDR"
    assert h264_keyframe_start(b"\x7c\x05\x88\x84") is False, "an IDR's middle fragment"
    assert h264_keyframe_start(b"\x7c\x81\x9a\x00") is False, "FU-A start of a non-IDR slice"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x80",  # X set, no extension byte
        b"\x90\x80",  # I set, no picture id
        b"\x90\xe0\x81",  # M set, 15-bit id cut short
        b"\x10",  # a descriptor and no frame
    ],
)
def test_malformed_vp8_is_none(payload: bytes) -> None:
    assert vp8_keyframe_start(payload) is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xe5\x00",  # forbidden zero bit
        b"\x18\x00",  # STAP-A cut short
        b"\x18\x00\x09\x67\x42",  # STAP-A size past the end
        b"\x18\x00\x00\x00\x02\x41\x9a",  # a zero-size unit
        b"\x7c\x85",  # FU-A with no fragment
        b"\x7c\xc5\x88",  # start and end at once
        b"\x19\x00\x00",  # STAP-B: not in packetization mode 1
        b"\x1d\x85\x00",  # FU-B
        b"\x00\x00",  # type 0
    ],
)
def test_malformed_h264_is_none(payload: bytes) -> None:
    assert h264_keyframe_start(payload) is None


def test_random_bytes_never_raise() -> None:
    rng = random.Random(16)
    for _ in range(20_000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        for codec in ("vp8", "h264", "opus"):
            assert keyframe_start(codec, payload) in (True, False, None)


def test_seq_newer_across_the_wrap() -> None:
    assert seq_newer(0, 65535) and seq_newer(5, 65530) and not seq_newer(65535, 0)
    assert not seq_newer(7, 7)


def run(rewriter: StreamRewriter, source: object, seqs: range | list[int], ts0: int, keyframe_at: int | None = None):
    out = []
    for i, seq in enumerate(seqs):
        keyframe = keyframe_at is not None and i == keyframe_at
        out.append(rewriter.rewrite(source, seq % 65536, (ts0 + 3000 * i) % (1 << 32), keyframe, 10.0 + i / 30))
    return out


def test_sequence_numbers_wrap_at_65535_without_a_gap() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=65533, first_ts=100)
    out = run(rewriter, A, range(1000, 1006), 0, keyframe_at=0)
    assert [o[0] for o in out if o] == [65533, 65534, 65535, 0, 1, 2]


def test_timestamps_wrap_at_2_to_the_32() -> None:
    rewriter = StreamRewriter("audio", 48_000, first_seq=0, first_ts=(1 << 32) - 1920)
    out = [rewriter.rewrite(A, n, 960 * n, True, 1.0 + n * 0.02) for n in range(4)]
    assert [o[1] for o in out if o] == [(1 << 32) - 1920, (1 << 32) - 960, 0, 960]


def test_video_starts_at_a_keyframe_and_drops_what_comes_before() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=10, first_ts=0)
    out = run(rewriter, A, range(500, 505), 9000, keyframe_at=2)
    assert out[:2] == [None, None] and rewriter.dropped == 2
    assert [o[0] for o in out[2:] if o] == [10, 11, 12]
    assert rewriter.rewrite(A, 501, 12000, False, 11.0) is None, "a late packet from before the segment"


def test_a_switch_continues_the_numbers_and_keeps_timestamps_rising() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=100, first_ts=5000)
    first = run(rewriter, A, range(40000, 40010), 7_000_000, keyframe_at=0)
    last_seq, last_ts = first[-1]
    # The new source (a reconnect) numbers from elsewhere, its clock far behind: it waits for its keyframe.
    assert rewriter.rewrite(B, 12, 50, False, 11.0) is None
    start = rewriter.rewrite(B, 13, 3050, True, 11.5)
    assert start is not None
    assert start[0] == (last_seq + 1) % 65536, "no gap in the sequence numbers across the switch"
    gap = (start[1] - last_ts) % (1 << 32)
    assert 0 < gap < 1 << 31, "the timestamp moves forward"
    assert gap >= int(0.02 * 90_000), "by at least a frame's worth"
    later = rewriter.rewrite(B, 14, 6050, False, 11.53)
    assert later == ((start[0] + 1) % 65536, (start[1] + 3000) % (1 << 32))
    assert rewriter.segments == 2


def test_a_reordered_and_a_retransmitted_packet_keep_their_place() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=0, first_ts=0)
    assert rewriter.rewrite(A, 10, 0, True, 1.0) == (0, 0)
    assert rewriter.rewrite(A, 12, 0, False, 1.0) == (2, 0)
    assert rewriter.rewrite(A, 11, 0, False, 1.01) == (1, 0), "the hole is filled in place"
    assert rewriter.highest_seq == 2


def test_restart_resumes_at_the_next_keyframe_with_continuous_numbers() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=0, first_ts=0)
    run(rewriter, A, range(0, 3), 0, keyframe_at=0)
    rewriter.restart()  # a gate closed
    last_wall = 10.0 + 2 / 30
    assert rewriter.rewrite(A, 3, 9000, False, last_wall + 0.5) is None
    seq, ts = rewriter.rewrite(A, 20, 60000, True, last_wall + 1.0) or (None, None)
    assert seq == 3, "the numbers run on from the last packet out"
    assert ts is not None and abs(ts - (2 * 3000 + 90_000)) <= 1, "a second of wall clock later, in RTP time"


def test_audio_switches_at_once() -> None:
    rewriter = StreamRewriter("audio", 48_000, first_seq=0, first_ts=0)
    assert rewriter.rewrite(A, 7, 960, True, 1.0) == (0, 0)
    assert rewriter.rewrite(B, 900, 123456, True, 1.02) == (1, 960)


def test_upstream_sequence_numbers_for_a_relayed_nack() -> None:
    rewriter = StreamRewriter("video", 90_000, first_seq=65534, first_ts=0)
    run(rewriter, A, range(300, 305), 0, keyframe_at=0)  # out 65534, 65535, 0, 1, 2
    assert rewriter.upstream_seq(0) == 302
    assert rewriter.upstream_seq(65534) == 300
    assert rewriter.upstream_seq(3) is None, "not sent yet"
    assert rewriter.upstream_seq(65533) is None, "before the segment"
    rewriter.rewrite(B, 9, 0, True, 20.0)  # a new source from out 3 on
    assert rewriter.upstream_seq(0) is None, "of another source: not asked of this one"
    assert rewriter.upstream_seq(3) == 9


def test_the_cache_answers_by_outgoing_sequence_number_and_forgets_overwritten_ones() -> None:
    cache = RetransmissionCache(size=8)
    for seq in range(65530, 65536 + 4):
        cache.put(SentPacket(seq % 65536, 0, 0, bytes([seq % 256])))
    assert cache.get(65535) is not None and cache.get(2) is not None
    assert cache.get(65529) is None and cache.misses == 1
    assert cache.get(65530) is None, "overwritten by seq 2 (same slot)"
    assert cache.hits == 2


def test_timestamps_unwrap_for_the_recorder() -> None:
    times = TimestampUnwrapper()
    assert times.map((1 << 32) - 3000) == 0
    assert times.map(0) == 3000
    assert times.map((1 << 32) - 1500) == 1500, "a late one from before the wrap"
    assert times.map(3000) == 6000
