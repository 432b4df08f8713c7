"""Typed results of the emotion stack.

Everything here holds plain ``int`` / ``float`` / ``str`` (never numpy scalars)
so results pickle cheaply across the worker pipe and serialise to JSON as is.
Nothing here ever holds pixels: face images stay inside the detector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: fer's seven classes, in the order of its model's outputs.
EXPRESSIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Health of the analysis, as a stream reports it.
#: ``starting``: the model is loading; ``ok``: frames are analysed;
#: ``degraded``: the worker crashed, hung or the detector failed and recovery is under way;
#: ``unavailable``: the emotion stack cannot run here (e.g. fer not installed) and will not retry.
Status = Literal["starting", "ok", "degraded", "unavailable"]

FlagChange = Literal["raised", "cleared"]


@dataclass(frozen=True, slots=True)
class Box:
    """A face rectangle in pixels of the analysed frame."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        # Detectors hand out numpy ints; keep plain ints so results pickle and serialise cleanly.
        for name in ("x", "y", "w", "h"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"box must have a positive size, got {self.w}x{self.h}")

    @property
    def area(self) -> int:
        return self.w * self.h

    def scaled(self, factor: float) -> Box:
        return Box(
            round(self.x * factor),
            round(self.y * factor),
            max(1, round(self.w * factor)),
            max(1, round(self.h * factor)),
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


@dataclass(frozen=True, slots=True)
class FaceEmotion:
    """One face and fer's probabilities for the seven expressions (they sum to about 1)."""

    box: Box
    scores: Mapping[str, float]

    def __post_init__(self) -> None:
        clean: dict[str, float] = {}
        for name in EXPRESSIONS:
            value = float(self.scores.get(name, 0.0))
            if not math.isfinite(value):
                raise ValueError(f"score for {name!r} is not finite: {value}")
            clean[name] = min(1.0, max(0.0, value))
        unknown = set(self.scores) - set(EXPRESSIONS)
        if unknown:
            raise ValueError(f"unknown expressions: {sorted(unknown)}")
        object.__setattr__(self, "scores", clean)

    @property
    def dominant(self) -> str:
        # Ties go to the earlier class in EXPRESSIONS, so the answer is deterministic.
        return max(EXPRESSIONS, key=lambda name: self.scores[name])


def largest_face(faces: list[FaceEmotion]) -> FaceEmotion | None:
    """The face to read when several are in view: the biggest one is the customer at the phone."""
    if not faces:
        return None
    return max(faces, key=lambda face: face.box.area)


@dataclass(frozen=True, slots=True)
class EmotionUpdate:
    """The aggregated reading after one analysed frame.

    ``frustration`` is this frame's score, ``smoothed`` the filtered value the flag
    follows. ``flag`` is set only on the update where the flag changes;
    ``flag_active`` / ``flag_seconds`` describe the current state.
    """

    media_time: float
    face_present: bool
    frustration: float | None
    smoothed: float
    dominant: str | None
    scores: Mapping[str, float] = field(default_factory=dict)
    flag: FlagChange | None = None
    flag_active: bool = False
    flag_seconds: float = 0.0
    kind: Literal["update"] = "update"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "emotion.update",
            "media_time": round(self.media_time, 3),
            "face_present": self.face_present,
            "frustration": None if self.frustration is None else round(self.frustration, 3),
            "smoothed": round(self.smoothed, 3),
            "dominant": self.dominant,
            "scores": {name: round(value, 3) for name, value in self.scores.items()},
            "flag": self.flag,
            "flag_active": self.flag_active,
            "flag_seconds": round(self.flag_seconds, 2),
        }


@dataclass(frozen=True, slots=True)
class EmotionStatus:
    """The health of a stream's analysis changed (see :data:`Status`)."""

    status: Status
    message: str
    kind: Literal["status"] = "status"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "emotion.status", "status": self.status, "message": self.message}


#: What ``async for event in stream`` yields.
EmotionEvent = EmotionUpdate | EmotionStatus


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One second of a call, for storage. Frustration figures cover only samples with a face."""

    second: int
    samples: int
    face_samples: int
    mean_frustration: float | None
    max_frustration: float | None
    dominant: str | None
    flag: bool

    @property
    def face_present(self) -> bool:
        return self.face_samples * 2 >= self.samples > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "second": self.second,
            "samples": self.samples,
            "face_present": self.face_present,
            "mean_frustration": None if self.mean_frustration is None else round(self.mean_frustration, 3),
            "max_frustration": None if self.max_frustration is None else round(self.max_frustration, 3),
            "dominant": self.dominant,
            "flag": self.flag,
        }
