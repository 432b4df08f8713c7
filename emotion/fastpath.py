"""The fast path: find the face cheaply, then classify only the face.

fer's documented call (``FerDetector``) runs a Haar cascade over the whole
frame at full size on every frame: ~60 ms of CPU at 640x480, against ~1 ms for
the expression classifier itself. This detector spends its CPU where it matters:

1. **Track**: while the face crop looks the same as when it was last found
   (mean absolute difference of a 16x16 brightness-normalised thumbnail), reuse
   the box. Re-detect every ``redetect_every`` frames anyway, or as soon as the
   crop changes a lot (the face moved, left, or something covered it).
2. **Re-detect near the old box** first: a Haar pass over the box's
   neighbourhood scaled so the face is ~``near_face_px`` wide, bounded by
   min/max sizes around the old face size. Only if that fails, or every
   ``full_detect_every`` detections (so a bigger face entering is noticed),
3. **detect on the whole frame downscaled** to ``detect_width`` (320 px) grey,
   with a minimum face size relative to the frame (a support caller's face is big).
4. **Classify** only the chosen box with ``detect_emotions(crop,
   face_rectangles=[box])`` (fer's call, reproduced on LiteRT by
   :class:`emotion.model.FerModel`) on a crop just large enough for fer's own
   square-and-offset region; on a crop, the per-call grey conversion and padding
   touch a few thousand pixels instead of the whole frame. The crop keeps the
   labels exactly those of fer's own ``FER`` given the same crop (the fixture test).

With several faces, the largest is the one returned (the person holding the phone).
One instance sees one stream: it keeps that stream's face box between frames.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from .detector import Pixels, check_image, faces_from_fer, new_fer
from .types import Box, FaceEmotion

if TYPE_CHECKING:
    from .model import FerModel

log = logging.getLogger(__name__)

_CASCADE = "haarcascade_frontalface_default.xml"
_THUMB = 16
# fer's classifier looks at the square box widened by its default offsets (10, 10).
_FER_OFFSET = 10


def _largest(boxes: Sequence[Sequence[int]] | np.ndarray) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return int(x), int(y), int(w), int(h)


class FaceTracker:
    """Finds the largest face and follows it from frame to frame (Haar only, no model)."""

    def __init__(
        self,
        *,
        detect_width: int = 320,
        min_face_fraction: float = 0.15,
        redetect_every: int = 10,
        full_detect_every: int = 10,
        change_threshold: float = 14.0,
        near_face_px: int = 80,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        if detect_width < 64:
            raise ValueError("detect_width must be at least 64")
        if not 0 < min_face_fraction < 1:
            raise ValueError("min_face_fraction must be in (0, 1)")
        if redetect_every < 1 or full_detect_every < 1:
            raise ValueError("redetect_every and full_detect_every must be at least 1")
        self.detect_width = detect_width
        self.min_face_fraction = min_face_fraction
        self.redetect_every = redetect_every
        self.full_detect_every = full_detect_every
        self.change_threshold = change_threshold
        self.near_face_px = near_face_px
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE)  # type: ignore[attr-defined]
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load {_CASCADE}")
        self._box: Box | None = None
        self._reference: np.ndarray | None = None
        self._frames_since_detect = 0
        self._detects_since_full = 0
        # Counters, for tests and the benchmark.
        self.full_detections = 0
        self.near_detections = 0
        self.reuses = 0

    def reset(self) -> None:
        self._box = None
        self._reference = None

    def locate(self, grey: np.ndarray) -> Box | None:
        """The box of the largest face in this grey frame, or None."""
        if self._box is not None and self._frames_since_detect < self.redetect_every:
            if self._change(grey, self._box) < self.change_threshold:
                self._frames_since_detect += 1
                self.reuses += 1
                return self._box
        box = None
        if self._box is not None and self._detects_since_full < self.full_detect_every:
            box = self._detect_near(grey, self._box)
            self._detects_since_full += 1
        if box is None:
            box = self._detect_full(grey)
            self._detects_since_full = 0
        self._box = box
        self._frames_since_detect = 0
        self._reference = None if box is None else self._thumbnail(grey, box)
        return box

    def _thumbnail(self, grey: np.ndarray, box: Box) -> np.ndarray:
        crop = grey[box.y : box.y + box.h, box.x : box.x + box.w]
        thumb = cv2.resize(crop, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
        # Normalise brightness so auto-exposure drifts do not force a re-detect.
        return thumb - float(thumb.mean())

    def _change(self, grey: np.ndarray, box: Box) -> float:
        if self._reference is None or box.x + box.w > grey.shape[1] or box.y + box.h > grey.shape[0]:
            return float("inf")
        return float(np.abs(self._thumbnail(grey, box) - self._reference).mean())

    def _detect(self, grey: np.ndarray, min_size: int, max_size: int | None = None) -> tuple[int, int, int, int] | None:
        kwargs = {"maxSize": (max_size, max_size)} if max_size else {}
        boxes = self._cascade.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            flags=cv2.CASCADE_SCALE_IMAGE,
            minSize=(min_size, min_size),
            **kwargs,
        )
        return _largest(boxes)

    def _detect_full(self, grey: np.ndarray) -> Box | None:
        self.full_detections += 1
        height, width = grey.shape[:2]
        scale = min(1.0, self.detect_width / width)
        small = (
            grey
            if scale == 1.0
            else cv2.resize(grey, (self.detect_width, max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        )
        min_size = max(24, round(self.min_face_fraction * min(small.shape[:2])))
        if min(small.shape[:2]) < min_size:
            return None
        found = self._detect(small, min_size)
        if found is None:
            return None
        return _clip(Box(*found).scaled(1 / scale), width, height)

    def _detect_near(self, grey: np.ndarray, old: Box) -> Box | None:
        self.near_detections += 1
        height, width = grey.shape[:2]
        margin = max(old.w, old.h) // 2
        x0, y0 = max(0, old.x - margin), max(0, old.y - margin)
        x1, y1 = min(width, old.x + old.w + margin), min(height, old.y + old.h + margin)
        scale = min(1.0, self.near_face_px / max(old.w, old.h))
        roi = grey[y0:y1, x0:x1]
        if scale < 1.0:
            roi = cv2.resize(
                roi,
                (max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale))),
                interpolation=cv2.INTER_AREA,
            )
        face = max(old.w, old.h) * scale
        min_size, max_size = max(24, round(face * 0.7)), round(face * 1.5)
        if min(roi.shape[:2]) < min_size:
            return None
        found = self._detect(roi, min_size, max_size)
        if found is None:
            return None
        local = Box(*found).scaled(1 / scale)
        return _clip(Box(local.x + x0, local.y + y0, local.w, local.h), width, height)


def _clip(box: Box, width: int, height: int) -> Box | None:
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.w), min(height, box.y + box.h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)


def fer_crop(width: int, height: int, box: Box) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` frame that fer's classifier reads for ``box``: (x0, y0, x1, y1)."""
    side = max(box.w, box.h)
    # fer's tosquare(): grow the short side, centred; then widen by its offsets.
    x = box.x - (side - box.w) // 2
    y = box.y - (side - box.h) // 2
    pad = _FER_OFFSET + 2
    return max(0, x - pad), max(0, y - pad), min(width, x + side + pad), min(height, y + side + pad)


@functools.cache
def _shared_fer() -> FerModel:
    # One interpreter per process (the worker's), not one per stream; callers use it from one thread.
    return new_fer()


class FastFerDetector:
    """The pipeline's default detector: ``FaceTracker`` + fer's classifier on the face crop only.

    One instance per stream (it tracks that stream's face); all instances share one ``FerModel``.
    It reads grey only (``pixels = "grey"``): given BGR, it converts once, and fer's
    classifier then gets the grey crop (the same numbers as fer's own conversion of the BGR crop).
    """

    pixels: Pixels = "grey"

    def __init__(self, **tracker_options: Any) -> None:
        self.tracker = FaceTracker(**tracker_options)
        self._fer = _shared_fer()

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        """The largest face of a grey (h, w) or BGR (h, w, 3) frame, scored."""
        image = check_image(bgr)
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        box = self.tracker.locate(grey)
        if box is None:
            return []
        return self.classify(grey, box)

    def classify(self, image: np.ndarray, box: Box) -> list[FaceEmotion]:
        """fer's expression scores for one known face box of a grey or BGR frame."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = fer_crop(width, height, box)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        results = self._fer.detect_emotions(crop, face_rectangles=[(box.x - x0, box.y - y0, box.w, box.h)])
        return [FaceEmotion(box=box, scores=face.scores) for face in faces_from_fer(results)]
