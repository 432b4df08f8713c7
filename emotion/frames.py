"""Frames in, small grey (or BGR) arrays out: validation and downscaling before analysis.

Two steps, for two costs. ``check_frame`` is O(1) (it looks at the type, dtype
and shape, never the pixels) and runs in ``push_frame`` on the event loop.
``to_grey`` / ``to_bgr`` convert and downscale (O(pixels)) and run off the loop,
only for the frames that actually get analysed. Downscaling to ``max_side``
(640 px) keeps the worker pipe small and Haar cheap; a support caller's face is
large in the picture, so nothing is lost.

fer's detector and classifier read grey only, and a decoded call frame
(yuv420p) already carries its grey picture: the Y plane. ``to_grey`` reads it
in place (no colour conversion, no ``to_ndarray`` copy) and only stretches its
video range (16-235) to full range (0-255) with a lookup table, which is what
converting to BGR and back to grey did: the labels stay those of that path on
every benchmark frame. Without the stretch the classifier sees a flatter face
and 5 of 150 labels change.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias, cast

import av
import cv2
import numpy as np

#: What streams accept: a decoded frame from an aiortc track, or a BGR (also grey / BGRA) uint8 array.
Frame: TypeAlias = av.VideoFrame | np.ndarray

DEFAULT_MAX_SIDE = 640
#: Pixel formats whose first plane is 8-bit luma at full resolution: the grey picture, ready to read.
LUMA_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})
# libav's AVCOL_RANGE_JPEG: a frame flagged so already spans 0-255.
_FULL_RANGE = 2
# Video range (16-235) to full range, as libswscale's yuv -> bgr24 conversion does it.
_STRETCH = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)
# The probe's thumbnail side (as the fast path's tracker uses).
_THUMB = 16
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


def analysed_size(frame: Frame, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """(width, height) of what ``to_grey`` / ``to_bgr`` make of ``frame`` (a checked frame)."""
    if isinstance(frame, av.VideoFrame):
        return fit(frame.width, frame.height, max_side)
    return fit(frame.shape[1], frame.shape[0], max_side)


def _luma(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's Y plane as a (height, width) view of its own memory, or None for other pixel formats."""
    if frame.format.name not in LUMA_FORMATS:
        return None
    plane = frame.planes[0]
    stride = plane.line_size
    if stride < frame.width or plane.buffer_size < stride * frame.height:
        return None
    rows = np.frombuffer(cast(bytes, plane), np.uint8, count=stride * frame.height).reshape(frame.height, stride)
    return rows[:, : frame.width]


def _full_range(frame: av.VideoFrame) -> bool:
    return frame.format.name.startswith("yuvj") or int(frame.color_range) == _FULL_RANGE


def to_grey(frame: Frame, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    """``frame`` as a grey uint8 (height, width) array, longer side at most ``max_side``.

    For a yuv frame this is its Y plane (stretched to full range when it is in
    video range); the result may be a view of the frame's or the array's memory
    (read it before the frame is modified, which decoded frames never are).
    """
    check_frame(frame)
    try:
        if isinstance(frame, av.VideoFrame):
            luma = _luma(frame)
            if luma is None:  # rgb and other formats: the BGR path, then OpenCV's grey
                return cv2.cvtColor(to_bgr(frame, max_side), cv2.COLOR_BGR2GRAY)
            grey = _shrink(luma, max_side)
            return grey if _full_range(frame) else cv2.LUT(grey, _STRETCH)
        if frame.ndim == 2 or frame.shape[2] == 1:
            return _shrink(frame.reshape(frame.shape[0], frame.shape[1]), max_side)
        if frame.shape[2] == 4:
            return _shrink(cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY), max_side)
        # BGR: shrink first, like to_bgr (the fast path's numbers on arrays stay what they were).
        return cv2.cvtColor(_shrink(frame, max_side), cv2.COLOR_BGR2GRAY)
    except cv2.error as exc:
        raise InvalidFrame(f"cannot convert {_describe(frame)} to grey: {exc}") from exc


def _describe(frame: Frame) -> str:
    return f"a {frame.format.name} frame" if isinstance(frame, av.VideoFrame) else f"a {frame.shape} array"


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    size = fit(width, height, max_side)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def face_thumbnail(frame: object, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """A 16x16 brightness-normalised float32 thumbnail of ``box`` (fractions of the frame), or None.

    Cheap (it reads only the box, from the Y plane of a yuv frame): the adaptive
    sampler uses it to notice a changed face between analyses. None when the
    frame cannot be read this way or the box is empty or not finite.
    """
    if not all(math.isfinite(v) for v in box):
        return None
    if isinstance(frame, av.VideoFrame):
        if frame.width <= 0 or frame.height <= 0:
            return None
        grey = _luma(frame)
    elif isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim in (2, 3) and frame.size:
        grey = frame if frame.ndim == 2 else frame[:, :, 0] if frame.shape[2] == 1 else None
        if grey is None and frame.shape[2] in (3, 4):
            grey = frame  # converted below, on the box only
    else:
        return None
    if grey is None:
        return None
    height, width = grey.shape[:2]
    x0, y0 = max(0, int(box[0] * width)), max(0, int(box[1] * height))
    x1, y1 = min(width, int((box[0] + box[2]) * width)), min(height, int((box[1] + box[3]) * height))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = grey[y0:y1, x0:x1]
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY if crop.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    thumb = cv2.resize(crop, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    return thumb - float(thumb.mean())


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
