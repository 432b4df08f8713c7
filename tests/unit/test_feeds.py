"""ParticipantFeed keeps timestamps monotonic and close to the wall clock, whatever the sender does."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.media.feeds import ParticipantFeed


class ScriptedTrack(MediaStreamTrack):
    """Video frames with the given RTP timestamps (90 kHz), ~30 per second of wall time."""

    kind = "video"

    def __init__(self, timestamps: list[int]) -> None:
        super().__init__()
        self._timestamps = list(timestamps)

    async def recv(self) -> av.VideoFrame:
        if not self._timestamps:
            raise MediaStreamError
        await asyncio.sleep(1 / 30)
        frame = av.VideoFrame(16, 16, "yuv420p")
        frame.pts = self._timestamps.pop(0)
        frame.time_base = Fraction(1, 90_000)
        return frame


class Collect:
    def __init__(self) -> None:
        self.times: list[float] = []

    def push(self, frame: av.VideoFrame) -> None:
        self.times.append(float(frame.pts * frame.time_base))


async def run(timestamps: list[int]) -> list[float]:
    feed = ParticipantFeed("video")
    sink = Collect()
    feed.subscribe(sink)
    feed.attach(ScriptedTrack(timestamps))
    for _ in range(500):
        if len(sink.times) == len(timestamps):
            break
        await asyncio.sleep(0.01)
    await feed.aclose()
    return sink.times


async def test_a_sender_clock_jumping_ahead_does_not_stretch_media_time() -> None:
    steady = [i * 3000 for i in range(30)]
    jump = [steady[-1] + 117 * 90_000 + i * 3000 for i in range(1, 11)]
    times = await run(steady + jump)
    assert times[0] == 0.0
    assert all(b > a for a, b in zip(times, times[1:], strict=False)), "monotonic"
    assert times[-1] < 3.0, f"40 frames at 30 fps end near 1.3 s, not {times[-1]:.1f} s"


async def test_a_sender_clock_going_back_continues_after_the_last_frame() -> None:
    times = await run([i * 3000 for i in range(20)] + [i * 3000 for i in range(10)])
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] < 2.0
