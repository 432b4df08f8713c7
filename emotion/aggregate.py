"""From per-frame expression scores to a frustration reading, a flag and a timeline.

Pure logic on media time (seconds of the customer's video), no clocks, no I/O:
the same frames always give the same updates, which is what the tests pin down.

Frustration of one frame is a weighted sum of fer's seven probabilities
(``EmotionSettings.frustration_weights``, see docs/emotion.md for why): anger
counts fully, disgust mostly, sadness and fear a little, the rest not at all.
It is smoothed with an exponential filter whose time constant is in seconds, so
the behaviour does not depend on how many frames per second get analysed. The
flag is raised once the smoothed score has stayed at or above
``raise_threshold`` for ``hold_seconds`` and cleared when it drops below
``clear_threshold`` (hysteresis: no flapping around one threshold).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .types import EXPRESSIONS, EmotionUpdate, FaceEmotion, FlagChange, TimelineRow, largest_face

DEFAULT_FRUSTRATION_WEIGHTS: Mapping[str, float] = {
    "angry": 1.0,
    "disgust": 0.6,
    "sad": 0.25,
    "fear": 0.15,
    "happy": 0.0,
    "surprise": 0.0,
    "neutral": 0.0,
}


@dataclass(frozen=True)
class EmotionSettings:
    """Tunables of the emotion reading. The defaults flag a sustained angry face in ~1.2-1.4 s.

    An angry face scores ~0.95; with a 0.4 s time constant the smoothed score
    passes 0.5 about 0.3 s after the expression changes, and the 1 s hold puts
    the flag up ~1.3 s after the change (1.2 s at 5 analysed frames per second,
    within one frame interval at any rate). Happy, surprised or neutral faces
    score ~0. The fixture's sad face scores 0.4-0.55 (fer reads it as partly
    angry): a sustained, visibly upset face may raise the flag, which is fine.
    """

    #: Frames per second of media time to analyse (the sampler's target; it lowers it under load).
    analysis_fps: float = 5.0
    #: Time constant of the exponential smoothing, in seconds of media time.
    smoothing_seconds: float = 0.4
    #: The smoothed score must reach this ...
    raise_threshold: float = 0.5
    #: ... for this long to raise the flag.
    hold_seconds: float = 1.0
    #: The flag clears when the smoothed score falls below this (lower than raise_threshold).
    clear_threshold: float = 0.3
    #: After this long without a face the reading resets (and an active flag clears).
    face_lost_seconds: float = 2.0
    #: At most this many ordinary updates per second reach consumers; flag changes always do.
    updates_per_second: float = 2.0
    #: Weight of each of fer's probabilities in the frustration score (each in [0, 1]).
    frustration_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FRUSTRATION_WEIGHTS))

    def __post_init__(self) -> None:
        if not 0.0 <= self.clear_threshold < self.raise_threshold <= 1.0:
            raise ValueError("need 0 <= clear_threshold < raise_threshold <= 1")
        for name in ("analysis_fps", "updates_per_second"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("smoothing_seconds", "hold_seconds", "face_lost_seconds"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative")
        unknown = set(self.frustration_weights) - set(EXPRESSIONS)
        if unknown:
            raise ValueError(f"unknown expressions in frustration_weights: {sorted(unknown)}")
        if any(not 0.0 <= w <= 1.0 for w in self.frustration_weights.values()):
            raise ValueError("frustration weights must be in [0, 1]")


def frustration(scores: Mapping[str, float], weights: Mapping[str, float] = DEFAULT_FRUSTRATION_WEIGHTS) -> float:
    """One frame's frustration in [0, 1] from fer's probabilities."""
    total = sum(weights.get(name, 0.0) * float(scores.get(name, 0.0)) for name in EXPRESSIONS)
    return min(1.0, max(0.0, total))


class Aggregator:
    """Turns each analysed frame's faces into an :class:`EmotionUpdate` (one stream, in media-time order)."""

    def __init__(self, settings: EmotionSettings | None = None) -> None:
        self.settings = settings or EmotionSettings()
        self.reset()

    def reset(self) -> None:
        self._smoothed = 0.0
        self._last_face_time: float | None = None
        self._last_time: float | None = None
        self._above_since: float | None = None
        self._flag_since: float | None = None

    @property
    def flag_active(self) -> bool:
        return self._flag_since is not None

    def update(self, media_time: float, faces: list[FaceEmotion]) -> EmotionUpdate:
        """The reading after a frame at ``media_time`` where ``faces`` were found (the largest is used)."""
        s = self.settings
        media_time = float(media_time)
        if not math.isfinite(media_time):
            raise ValueError(f"media_time must be finite, got {media_time}")
        dropped_flag = False
        if self._last_time is not None and media_time < self._last_time - s.face_lost_seconds:
            # The clock jumped back (a new source): old state says nothing about the new one.
            dropped_flag = self.flag_active
            self.reset()
        self._last_time = media_time if self._last_time is None else max(self._last_time, media_time)

        face = largest_face(faces)
        update = self._no_face(media_time) if face is None else self._face(media_time, face)
        if dropped_flag and update.flag is None and not update.flag_active:
            update = replace(update, flag="cleared")
        return update

    def _face(self, media_time: float, face: FaceEmotion) -> EmotionUpdate:
        s = self.settings

        raw = frustration(face.scores, s.frustration_weights)
        if self._last_face_time is None:
            self._smoothed = raw
        else:
            dt = max(0.0, media_time - self._last_face_time)
            alpha = 1.0 if s.smoothing_seconds == 0 else 1.0 - math.exp(-dt / s.smoothing_seconds)
            self._smoothed += alpha * (raw - self._smoothed)
        self._last_face_time = media_time if self._last_face_time is None else max(self._last_face_time, media_time)

        change: FlagChange | None = None
        duration = 0.0
        if self._smoothed >= s.raise_threshold:
            if self._above_since is None:
                self._above_since = media_time
        else:
            self._above_since = None
        if self._flag_since is None:
            if self._above_since is not None and media_time - self._above_since >= s.hold_seconds:
                self._flag_since = media_time
                change = "raised"
        elif self._smoothed < s.clear_threshold:
            change, duration = "cleared", media_time - self._flag_since
            self._flag_since = None
        if self._flag_since is not None:
            duration = media_time - self._flag_since
        return self._reading(media_time, face, raw, change, duration)

    def _no_face(self, media_time: float) -> EmotionUpdate:
        change: FlagChange | None = None
        duration = 0.0
        gone_for = None if self._last_face_time is None else media_time - self._last_face_time
        if gone_for is not None and gone_for >= self.settings.face_lost_seconds:
            # Nobody in view for a while: whatever we read before no longer describes the call.
            if self._flag_since is not None:
                change, duration = "cleared", media_time - self._flag_since
            last_time = self._last_time
            self.reset()
            self._last_time = last_time
        elif self._flag_since is not None:
            duration = media_time - self._flag_since
        return self._reading(media_time, None, None, change, duration)

    def _reading(
        self,
        media_time: float,
        face: FaceEmotion | None,
        raw: float | None,
        change: FlagChange | None,
        flag_seconds: float,
    ) -> EmotionUpdate:
        """The update after the state has moved on; ``flag_seconds``: how long the flag has been (or was) up."""
        return EmotionUpdate(
            media_time=media_time,
            face_present=face is not None,
            frustration=raw,
            smoothed=self._smoothed,
            dominant=None if face is None else face.dominant,
            scores={} if face is None else dict(face.scores),
            flag=change,
            flag_active=self._flag_since is not None,
            flag_seconds=max(0.0, flag_seconds),
        )


class UpdateThrottle:
    """Lets through at most ``updates_per_second`` updates (media time), but never holds back news.

    News: a flag change, or a face appearing / disappearing.
    """

    def __init__(self, updates_per_second: float) -> None:
        if updates_per_second <= 0:
            raise ValueError("updates_per_second must be positive")
        self.interval = 1.0 / updates_per_second
        self._last: EmotionUpdate | None = None

    def allow(self, update: EmotionUpdate) -> bool:
        last = self._last
        news = last is None or update.flag is not None or update.face_present != last.face_present
        if not news and last is not None and 0 <= update.media_time - last.media_time < self.interval:
            return False
        self._last = update
        return True


class TimelineReducer:
    """Folds updates into one :class:`TimelineRow` per second of media time, for storage.

    Feed every update in media-time order; ``add`` returns the rows of seconds that
    are complete, ``flush`` the last one. Seconds without an analysed frame get no row.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._updates: list[EmotionUpdate] = []

    def add(self, update: EmotionUpdate) -> list[TimelineRow]:
        second = math.floor(update.media_time)
        rows: list[TimelineRow] = []
        if self._second is not None and second != self._second:
            rows = self.flush()
        self._second = second
        self._updates.append(update)
        return rows

    def flush(self) -> list[TimelineRow]:
        if self._second is None or not self._updates:
            return []
        updates, second = self._updates, self._second
        self._updates, self._second = [], None
        with_face = [u for u in updates if u.face_present and u.frustration is not None]
        values = [u.frustration for u in with_face if u.frustration is not None]
        dominant = None
        if with_face:
            mean_scores = {
                name: sum(u.scores.get(name, 0.0) for u in with_face) / len(with_face) for name in EXPRESSIONS
            }
            dominant = max(EXPRESSIONS, key=lambda name: mean_scores[name])
        return [
            TimelineRow(
                second=second,
                samples=len(updates),
                face_samples=len(with_face),
                mean_frustration=sum(values) / len(values) if values else None,
                max_frustration=max(values) if values else None,
                dominant=dominant,
                flag=any(u.flag_active or u.flag == "cleared" for u in updates),
            )
        ]
