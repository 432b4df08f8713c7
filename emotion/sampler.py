"""Which frames to analyse: a small policy object each stream is given.

A call delivers 15-30 frames per second; expressions change over hundreds of
milliseconds, so analysing ~5 per second loses nothing and leaves CPU for
other calls. The sampler also adapts to load: the pipeline reports how long
each analysis took from hand-off to result (time spent waiting for a worker
busy with other calls included), and the sampler lowers its rate so a stream
never asks for more than the shared worker can give it.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable


@runtime_checkable
class Sampler(Protocol):
    """Decides, per frame, whether it is worth analysing."""

    def __call__(self, media_time: float) -> bool:
        """True to keep the frame at ``media_time`` (seconds) for analysis."""
        ...

    def record(self, latency_s: float) -> None:
        """One analysis finished ``latency_s`` seconds after its frame was handed to the worker."""
        ...


class FrameSampler:
    """Keeps frames at most ``fps`` per second of media time, fewer when analyses come back slowly.

    The effective rate is ``min(fps, 1 / (headroom * typical latency))``, never
    below ``min_fps``; the typical latency is an exponentially weighted mean.
    """

    def __init__(self, fps: float = 5.0, *, min_fps: float = 0.5, headroom: float = 1.2, weight: float = 0.3) -> None:
        if not (fps > 0 and 0 < min_fps <= fps):
            raise ValueError("need fps > 0 and 0 < min_fps <= fps")
        if headroom < 1 or not 0 < weight <= 1:
            raise ValueError("need headroom >= 1 and 0 < weight <= 1")
        self.fps = fps
        self.min_fps = min_fps
        self.headroom = headroom
        self.weight = weight
        self.latency_s: float | None = None
        self._next: float | None = None

    @property
    def effective_fps(self) -> float:
        if not self.latency_s:
            return self.fps
        return max(self.min_fps, min(self.fps, 1.0 / (self.headroom * self.latency_s)))

    def __call__(self, media_time: float) -> bool:
        if not math.isfinite(media_time):
            return False
        interval = 1.0 / self.effective_fps
        # A millisecond of slack, so 30 fps timestamps (n/30) land on a 5 fps grid despite rounding.
        if self._next is not None and self._next - 0.001 > media_time >= self._next - interval - 1.0:
            return False
        # Stay on the grid while frames keep coming; after a gap (or a jump back) restart from here.
        on_grid = self._next is not None and 0 <= media_time - self._next < interval
        self._next = (self._next if on_grid and self._next is not None else media_time) + interval
        return True

    def record(self, latency_s: float) -> None:
        if not math.isfinite(latency_s) or latency_s < 0:
            return
        if self.latency_s is None:
            self.latency_s = latency_s
        else:
            self.latency_s += self.weight * (latency_s - self.latency_s)


class EveryFrame:
    """Offers every frame; the pipeline's newest-frame-only slot does the dropping (tests, benchmarks)."""

    def __call__(self, media_time: float) -> bool:
        return math.isfinite(media_time)

    def record(self, latency_s: float) -> None:
        pass
