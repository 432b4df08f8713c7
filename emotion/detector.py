"""Face + expression detectors, and the one careful way to load fer.

fer is an optional extra. Importing it is expensive (TensorFlow, ~5-30 s) and
has side effects (``logging.basicConfig(level=INFO)``, deprecation warnings,
TensorFlow's C++ banner), so it is imported lazily by :func:`load_fer` only.

fer keeps its TFLite interpreter in a class attribute, shared by every ``FER``
instance in the process. An interpreter is not reentrant, so a process must run
one inference at a time: the pipeline gives each worker process one thread.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from .types import Box, FaceEmotion

if TYPE_CHECKING:
    from fer.fer import FER

log = logging.getLogger(__name__)

_FER_MODULES = ("fer", "tensorflow", "pkg_resources")
_load_lock = threading.Lock()


class DetectorUnavailable(RuntimeError):
    """The emotion stack cannot run in this environment (missing or broken optional dependency)."""


@runtime_checkable
class Detector(Protocol):
    """Finds faces in a BGR uint8 frame and scores their expressions.

    The pipeline builds one detector per stream, so an implementation may keep
    state between frames of that stream (the fast path tracks the face box).
    """

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]: ...


def fer_available() -> tuple[bool, str]:
    """Whether fer and TensorFlow are installed, without importing them (cheap, no side effects)."""
    missing = [name for name in _FER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        hint = "install the 'emotion' extra (uv sync --extra emotion)"
        if missing == ["pkg_resources"]:
            hint = "fer needs pkg_resources: install setuptools<81"
        return False, f"emotion analysis unavailable: missing {', '.join(missing)}; {hint}"
    return True, "fer and tensorflow are installed"


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """Undo fer's import-time ``logging.basicConfig`` and hush its dependencies' chatter."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # TensorFlow reads these once, at import; an explicit setting by the operator wins. fer runs on
    # TFLite, so turning off oneDNN for full TensorFlow ops only silences its import banner.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("fer").setLevel(logging.WARNING)


def load_fer() -> type[FER]:
    """Import fer's ``FER`` class, or raise :class:`DetectorUnavailable` saying why not."""
    ok, reason = fer_available()
    if not ok:
        raise DetectorUnavailable(reason)
    with _load_lock, _quiet_import():
        try:
            from fer.fer import FER
        except Exception as exc:  # ImportError, but TensorFlow can fail in many other ways
            raise DetectorUnavailable(f"emotion analysis unavailable: importing fer failed: {exc!r}") from exc
    return FER


def new_fer(**kwargs: Any) -> FER:
    """A ``FER`` instance (Haar face detector + cached TFLite classifier), built quietly."""
    fer_class = load_fer()
    with _quiet_import():
        try:
            return fer_class(**kwargs)
        except Exception as exc:
            raise DetectorUnavailable(f"emotion analysis unavailable: loading fer's model failed: {exc!r}") from exc


def check_bgr(image: object) -> np.ndarray:
    """``image`` as a BGR uint8 array, or ``ValueError`` / ``TypeError`` saying what is wrong.

    Detectors must never hand fer anything else: given a string, fer's
    ``load_image`` would fetch it as a URL.
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
    """fer used the documented way: Haar on the whole frame, then every face classified.

    This is the reference ("naive") detector: accurate enough, but its full-size
    Haar pass costs ~60 ms of CPU on a 640x480 frame. See ``FastFerDetector``.
    """

    def __init__(self, *, min_face_size: int = 50) -> None:
        self._fer = new_fer(min_face_size=min_face_size)

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        image = check_bgr(bgr)
        return faces_from_fer(self._fer.detect_emotions(image))
