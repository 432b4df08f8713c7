"""Stand-in detectors for pipeline tests: importable by path inside a spawned worker.

They decide by the frame's colour, so a test states what the "face" shows by
painting the frame: green reads as happy, red as angry, blue as sad, grey as
neutral, and black as no face at all.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from emotion.detector import DetectorUnavailable
from emotion.types import EXPRESSIONS, Box, FaceEmotion

GREEN = (40, 200, 40)  # BGR
RED = (40, 40, 200)
BLUE = (200, 40, 40)
GREY = (128, 128, 128)
BLACK = (0, 0, 0)


def solid(colour: tuple[int, int, int], width: int = 64, height: int = 48) -> np.ndarray:
    """A BGR frame of one colour."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = colour
    return frame


def face(expression: str, confidence: float = 0.9, box: Box | None = None) -> FaceEmotion:
    """A face scoring ``confidence`` for ``expression`` and the rest spread evenly."""
    rest = (1.0 - confidence) / (len(EXPRESSIONS) - 1)
    scores = {name: confidence if name == expression else rest for name in EXPRESSIONS}
    return FaceEmotion(box=box or Box(10, 10, 20, 20), scores=scores)


def read_colour(bgr: np.ndarray) -> list[FaceEmotion]:
    b, g, r = (float(v) for v in bgr.reshape(-1, 3).mean(axis=0))
    if max(b, g, r) < 20:
        return []
    if r > g + 50 and r > b + 50:
        return [face("angry")]
    if g > r + 50 and g > b + 50:
        return [face("happy")]
    if b > r + 50 and b > g + 50:
        return [face("sad")]
    return [face("neutral")]


class ColourDetector:
    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        return read_colour(bgr)


class SleepyDetector:
    """Takes ``seconds`` per frame (the GIL is released while it sleeps, like native inference)."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        time.sleep(self.seconds)
        return read_colour(bgr)


class BusyDetector:
    """Holds the CPU (and the GIL) for ``seconds`` per frame: harmless only in a separate process."""

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return read_colour(bgr)


class FailsOnBlackDetector:
    """Raises on black frames, reads colour otherwise."""

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        if bgr.max() < 20:
            raise RuntimeError("cannot see anything")
        return read_colour(bgr)


class FailsOnceDetector:
    """Fails (``fail``) on its first frame unless ``marker`` exists; it creates the marker first, so the worker
    that replaces a dead or stuck one reads colour."""

    def __init__(self, marker: str) -> None:
        self.marker = Path(marker)

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        if not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            self.fail()
        return read_colour(bgr)

    def fail(self) -> None:
        raise NotImplementedError


class ExitOnceDetector(FailsOnceDetector):
    """Kills its own process on its first frame."""

    def fail(self) -> None:
        os._exit(3)


class HangOnceDetector(FailsOnceDetector):
    """Hangs (an hour) on its first frame."""

    def fail(self) -> None:
        time.sleep(3600)


class UnavailableDetector:
    def __init__(self) -> None:
        raise DetectorUnavailable("emotion analysis unavailable: test says there is no model here")


class BrokenStartDetector:
    def __init__(self) -> None:
        raise RuntimeError("model file is corrupt")


class WrongAnswerDetector:
    def detect(self, bgr: np.ndarray) -> object:
        return "happy, probably"


class ShapeRecorder:
    """Records the shape of every image it is given (thread mode only: the list lives in this process)."""

    seen: ClassVar[list[tuple[int, ...]]] = []

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        ShapeRecorder.seen.append(tuple(bgr.shape))
        return [face("neutral", box=Box(0, 0, bgr.shape[1], bgr.shape[0]))]


class SlowStartDetector:
    """Takes ``seconds`` to load, like a cold TensorFlow import."""

    def __init__(self, seconds: float = 30.0) -> None:
        time.sleep(seconds)

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        return read_colour(bgr)


class RecordingDetector:
    """Records the mean colour of every frame it is given; sees a neutral face everywhere."""

    seen: list[tuple[float, float, float]] = []
    lock = threading.Lock()

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        mean = bgr.reshape(-1, 3).mean(axis=0)
        with self.lock:
            RecordingDetector.seen.append((float(mean[0]), float(mean[1]), float(mean[2])))
        h, w = bgr.shape[:2]
        return [FaceEmotion(Box(w // 4, h // 4, w // 2, h // 2), {"neutral": 0.9, "happy": 0.1})]


def recording_detector() -> RecordingDetector:
    return RecordingDetector()
