"""Which frames to analyse: a small policy object each stream is given.

A call delivers 15-30 frames per second; expressions change over hundreds of
milliseconds, so analysing ~5 per second loses nothing and leaves CPU for
other calls. The sampler also adapts to load: the pipeline reports how long
each analysis took from hand-off to result (time spent waiting for a worker
busy with other calls included), and the sampler lowers its rate so a stream
never asks for more than the shared worker can give it.

The default, :class:`AdaptiveSampler`, also backs off while nothing changes:
a customer listening calmly gives the same reading second after second. It
sees every analysis's outcome (:class:`Observation`: no pixels) and, between
analyses, glances at the face box of the frames it skips (a 16x16 thumbnail
read from the Y plane, ~20 µs), so a changed face is analysed at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .frames import face_thumbnail

#: A face box as fractions of the frame: (x, y, width, height), each in [0, 1].
RelativeBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one analysis found, as the sampler is told it (numbers only).

    ``dominant``/``scores``/``box`` are those of the largest face (None / empty
    without a face); ``smoothed`` and ``flag_active`` are the aggregator's.
    """

    media_time: float
    dominant: str | None
    scores: Mapping[str, float] = field(default_factory=dict)
    box: RelativeBox | None = None
    smoothed: float = 0.0
    flag_active: bool = False


@runtime_checkable
class Sampler(Protocol):
    """Decides, per frame, whether it is worth analysing."""

    def __call__(self, media_time: float, frame: object = None) -> bool:
        """True to keep ``frame`` (at ``media_time`` seconds) for analysis. Cheap: called for every frame."""
        ...

    def record(self, latency_s: float) -> None:
        """One analysis finished ``latency_s`` seconds after its frame was handed to the worker."""
        ...

    def observe(self, observation: Observation) -> None:
        """What that analysis found (called after :meth:`record`)."""
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

    def __call__(self, media_time: float, frame: object = None) -> bool:
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

    def observe(self, observation: Observation) -> None:
        pass


class AdaptiveSampler(FrameSampler):
    """:class:`FrameSampler` that backs off to ``floor_fps`` while the face and the reading are steady.

    An analysis is *steady* when, against the one before, a face is still there,
    its dominant expression is the same, no score moved more than
    ``score_delta``, the box moved (or grew) less than ``box_tolerance`` of its
    size, and the smoothed frustration is below ``alert_at`` with no flag up.
    After ``settle`` steady analyses in a row the interval doubles with each
    further one, up to ``1 / floor_fps``. Back to the full rate, at once:

    * on an unsteady analysis (new expression, lost face, a box that jumped,
      frustration near the raise threshold, anything not finite);
    * on a skipped frame whose face box looks different from the last kept
      frame's (mean absolute difference of brightness-normalised 16x16
      thumbnails at least ``change_threshold`` grey levels), or that cannot be
      looked at (then it is analysed rather than guessed).

    Frames are still only kept on the full-rate grid (and the load limit still
    applies), so backing off never adds latency to a change it sees.
    """

    def __init__(
        self,
        fps: float = 5.0,
        *,
        floor_fps: float = 1.0,
        score_delta: float = 0.1,
        box_tolerance: float = 0.15,
        alert_at: float = 0.3,
        settle: int = 2,
        change_threshold: float = 6.0,
        min_fps: float = 0.5,
        headroom: float = 1.2,
        weight: float = 0.3,
    ) -> None:
        super().__init__(fps, min_fps=min_fps, headroom=headroom, weight=weight)
        if not 0 < floor_fps <= fps:
            raise ValueError("need 0 < floor_fps <= fps")
        if not (score_delta >= 0 and box_tolerance >= 0 and change_threshold > 0 and settle >= 1):
            raise ValueError("need score_delta >= 0, box_tolerance >= 0, change_threshold > 0 and settle >= 1")
        if not 0 <= alert_at <= 1:
            raise ValueError("alert_at must be in [0, 1]")
        self.floor_fps = floor_fps
        self.score_delta = score_delta
        self.box_tolerance = box_tolerance
        self.alert_at = alert_at
        self.settle = settle
        self.change_threshold = change_threshold
        #: Steady analyses in a row.
        self.steady = 0
        self._last: Observation | None = None
        self._kept_at: float | None = None
        self._reference: np.ndarray | None = None
        self._reference_box: RelativeBox | None = None
        # Counters, for tests and the benchmark.
        self.skipped_steady = 0
        self.snapped_back = 0

    @classmethod
    def for_settings(cls, analysis_fps: float, raise_threshold: float) -> AdaptiveSampler:
        """The pipeline's default: full rate ``analysis_fps``; stay there from 0.2 below the raise threshold."""
        return cls(analysis_fps, floor_fps=min(1.0, analysis_fps), alert_at=max(0.0, raise_threshold - 0.2))

    @property
    def backoff_s(self) -> float:
        """The current interval between analyses while steady (0: not backing off)."""
        if self.steady < self.settle:
            return 0.0
        return min(1.0 / self.floor_fps, 2.0 ** (self.steady - self.settle + 1) / self.fps)

    def __call__(self, media_time: float, frame: object = None) -> bool:
        if not super().__call__(media_time, frame):
            return False
        kept_at, backoff = self._kept_at, self.backoff_s
        if kept_at is not None and 0 <= media_time - kept_at < backoff - 0.001:
            if not self._changed(frame):
                self.skipped_steady += 1
                return False
            self.snapped_back += 1
            self.steady = 0
        self._kept_at = media_time
        # The face as it looks in the frame kept, where the last analysis found it.
        self._reference_box = None if self._last is None else self._last.box
        self._reference = None if self._reference_box is None else face_thumbnail(frame, self._reference_box)
        return True

    def _changed(self, frame: object) -> bool:
        box = self._reference_box
        if self._reference is None or box is None:
            return True
        thumb = face_thumbnail(frame, box)
        if thumb is None:
            return True
        return float(np.abs(thumb - self._reference).mean()) >= self.change_threshold

    def observe(self, observation: Observation) -> None:
        steady = self._steady(self._last, observation)
        self.steady = self.steady + 1 if steady else 0
        self._last = observation if observation.box is not None and _finite_box(observation.box) else None

    def _steady(self, before: Observation | None, now: Observation) -> bool:
        if before is None or before.box is None or now.box is None or now.dominant is None:
            return False
        if now.dominant != before.dominant or now.flag_active:
            return False
        if not (math.isfinite(now.smoothed) and now.smoothed < self.alert_at):
            return False
        names = set(now.scores) | set(before.scores)
        for name in names:
            delta = abs(now.scores.get(name, 0.0) - before.scores.get(name, 0.0))
            if not delta <= self.score_delta:  # NaN compares False: not steady
                return False
        return _box_moved(before.box, now.box) <= self.box_tolerance


def _finite_box(box: RelativeBox) -> bool:
    return all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0


def _box_moved(a: RelativeBox, b: RelativeBox) -> float:
    """How far box ``b`` is from ``a``, relative to ``a``'s size (inf when either is not a box)."""
    if not (_finite_box(a) and _finite_box(b)):
        return math.inf
    side = max(a[2], a[3])
    shift = max(abs(a[0] + a[2] / 2 - b[0] - b[2] / 2), abs(a[1] + a[3] / 2 - b[1] - b[3] / 2))
    grow = max(abs(a[2] - b[2]), abs(a[3] - b[3]))
    return max(shift, grow) / side


class EveryFrame:
    """Offers every frame; the pipeline's newest-frame-only slot does the dropping (tests, benchmarks)."""

    def __call__(self, media_time: float, frame: object = None) -> bool:
        return math.isfinite(media_time)

    def record(self, latency_s: float) -> None:
        pass

    def observe(self, observation: Observation) -> None:
        pass
