"""Frames in, small BGR arrays out: validation and downscaling before analysis.

Two steps, for two costs. ``check_frame`` is O(1) (it looks at the type, dtype
and shape, never the pixels) and runs in ``push_frame`` on the event loop.
``to_bgr`` converts and downscales (O(pixels)) and runs off the loop, only for
the frames that actually get analysed. Downscaling to ``max_side`` (640 px)
first keeps the worker pipe small (<1 MB per frame) and Haar cheap; a support
caller's face is large in the picture, so nothing is lost.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

import av
import cv2
import numpy as np

#: What streams accept: a decoded frame from an aiortc track, or a BGR (also grey / BGRA) uint8 array.
Frame: TypeAlias = av.VideoFrame | np.ndarray

DEFAULT_MAX_SIDE = 640
# Guard rail against absurd inputs (a 1e9-pixel array would stall a worker thread for seconds).
MAX_PIXELS = 64_000_000


class InvalidFrame(ValueError):
    """A pushed frame cannot be analysed; the message says why. The stream carries on."""


def check_frame(frame: object) -> None:
    """Raise :class:`InvalidFrame` unless ``frame`` looks analysable. Cheap: no pixel is read."""
    if isinstance(frame, av.VideoFrame):
        if frame.width <= 0 or frame.height <= 0:
            raise InvalidFrame(f"empty video frame {frame.width}x{frame.height}")
        return
    if frame is None:
        raise InvalidFrame("frame is None")
    if not isinstance(frame, np.ndarray):
        raise InvalidFrame(f"expected an av.VideoFrame or a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidFrame(f"expected a uint8 array, got dtype {frame.dtype}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise InvalidFrame(f"expected shape (h, w), (h, w, 3) or (h, w, 4), got {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidFrame(f"empty frame {frame.shape}")
    if frame.shape[0] * frame.shape[1] > MAX_PIXELS:
        raise InvalidFrame(f"frame too large: {frame.shape[1]}x{frame.shape[0]} pixels")


def check_media_time(media_time: object) -> float:
    """``media_time`` as a finite float of seconds, or :class:`InvalidFrame`."""
    try:
        value = float(media_time)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidFrame(f"media_time must be a number of seconds, got {media_time!r}") from exc
    if not math.isfinite(value):
        raise InvalidFrame(f"media_time must be finite, got {value}")
    return value


def fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size that keeps the aspect ratio with the longer side at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_bgr(frame: Frame, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    """A new contiguous BGR uint8 array of ``frame``, downscaled so its longer side is at most ``max_side``."""
    check_frame(frame)
    if isinstance(frame, av.VideoFrame):
        width, height = fit(frame.width, frame.height, max_side)
        try:
            # One libswscale pass converts and scales (much cheaper than to_ndarray + resize).
            converted = frame.reformat(width=width, height=height, format="bgr24").to_ndarray()
        except Exception as exc:  # unusual pixel formats, corrupt frames
            raise InvalidFrame(f"cannot convert {frame.format.name} frame: {exc}") from exc
        return np.ascontiguousarray(converted)
    try:
        return _array_to_bgr(frame, max_side)
    except cv2.error as exc:
        raise InvalidFrame(f"cannot convert a {frame.shape} array: {exc}") from exc


def _array_to_bgr(frame: np.ndarray, max_side: int) -> np.ndarray:
    image: np.ndarray[Any, Any] = frame
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image.reshape(image.shape[0], image.shape[1]), cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    height, width = image.shape[:2]
    size = fit(width, height, max_side)
    if size != (width, height):
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # Copy: the caller may reuse its buffer, and the copy is what crosses to the worker.
    return np.array(image, dtype=np.uint8, order="C", copy=True)
