"""Real face pictures for tests: fixture loading, phone-sized frames, clips and y4m files.

The photos live in ``tests/fixtures/faces`` (see its ATTRIBUTION.md) with a
MANIFEST.json naming each person's region of the image, their expression and
face box. From them this module builds:

* ``Person.crop()``: one person's picture;
* ``landscape(person)`` / ``portrait(person)``: 640x480 / 480x640 BGR frames with
  the person on a soft, non-flat background, and where the face ended up;
* ``make_clip([("happy", 5.0), ("angry", 5.0)])``: a timed clip whose
  ``frame_at(t)`` gives the frame at media time ``t`` (with a gentle hand-held
  sway, so trackers and encoders see motion), ``frames()`` iterates it at its fps;
  ``happy_then_angry_clip()`` is the standard cue-latency clip;
* ``write_y4m(path, frames, fps)``: a YUV4MPEG2 4:2:0 file for Chromium's
  ``--use-file-for-fake-video-capture`` (``read_y4m`` reads it back).

Frames are BGR uint8 arrays (OpenCV order), the format ``av.VideoFrame.from_ndarray(
frame, format="bgr24")`` takes. Everything is deterministic: same inputs, same pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

FACES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "faces"

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Person:
    """One person in a fixture image: ``region`` holds them, ``face_box`` is their face (image pixels)."""

    file: str
    region: Rect
    expression: str
    face_box: Rect

    def crop(self) -> np.ndarray:
        """This person's region of the image: a single-face BGR picture (a copy)."""
        x, y, w, h = self.region
        return load_image(self.file)[y : y + h, x : x + w].copy()

    @property
    def face_box_in_crop(self) -> Rect:
        x, y, w, h = self.face_box
        return (x - self.region[0], y - self.region[1], w, h)

    @property
    def name(self) -> str:
        return f"{Path(self.file).stem}:{self.expression}@{self.region[0]},{self.region[1]}"


@dataclass(frozen=True)
class Framed:
    """A composed frame and where the face is in it."""

    image: np.ndarray
    face_box: Rect
    expression: str


@cache
def manifest() -> dict[str, Any]:
    """The parsed MANIFEST.json."""
    return json.loads((FACES_DIR / "MANIFEST.json").read_text())


def image_files() -> list[str]:
    return [entry["file"] for entry in manifest()["images"]]


def images_without_faces() -> list[str]:
    return [entry["file"] for entry in manifest()["images"] if not entry["people"]]


def people(expression: str | None = None) -> list[Person]:
    """Every person in the manifest, or those showing ``expression``."""
    found = []
    for entry in manifest()["images"]:
        for p in entry["people"]:
            if expression is None or p["expression"] == expression:
                found.append(Person(entry["file"], tuple(p["region"]), p["expression"], tuple(p["face_box"])))
    return found


def person(expression: str, index: int = 0) -> Person:
    """The ``index``-th person showing ``expression`` (KeyError if there is none)."""
    matches = people(expression)
    if len(matches) <= index:
        raise KeyError(f"no person #{index} with expression {expression!r} in {FACES_DIR / 'MANIFEST.json'}")
    return matches[index]


def expressions() -> list[str]:
    """The expressions the fixtures show, each once, in manifest order."""
    return list(dict.fromkeys(p.expression for p in people()))


@cache
def _read(file: str) -> np.ndarray:
    path = FACES_DIR / file
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read fixture image {path}")
    image.flags.writeable = False  # cached: callers get copies or read-only views
    return image


def load_image(file: str) -> np.ndarray:
    """A fixture image as BGR uint8 (read-only; copy it to draw on it)."""
    return _read(file)


@cache
def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A wall-like picture: a vertical light gradient, soft colour blotches and a little grain.
    gradient = np.linspace(1.0, 0.75, height, dtype=np.float32)[:, None, None]
    cells = rng.random((height // 80 + 3, width // 80 + 3, 3), dtype=np.float32)
    # Mostly light and shade, a little colour.
    cells = 0.75 * cells.mean(axis=2, keepdims=True) + 0.25 * cells
    blotches = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 3.0, (height, width, 3)).astype(np.float32)
    tint = np.array([150, 160, 170], np.float32)  # BGR: a warm grey
    image = tint * gradient + (blotches - 0.5) * 70 + grain
    out = np.clip(image, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic, non-flat BGR background (a copy)."""
    return _background(width, height, seed).copy()


def _soft_mask(width: int, height: int) -> np.ndarray:
    # 1 inside, fading to 0 over the outer ~6 % of each side, so the photo's edges do not look like a box.
    mask = np.zeros((height, width), np.float32)
    mx, my = max(1, width // 16), max(1, height // 16)
    mask[my : height - my, mx : width - mx] = 1.0
    blur = max(3, (min(width, height) // 12) | 1)
    return cv2.GaussianBlur(mask, (blur, blur), 0)[:, :, None]


def place(
    who: Person,
    width: int = 640,
    height: int = 480,
    *,
    face_fraction: float = 0.35,
    center: tuple[float, float] = (0.5, 0.45),
    seed: int = 0,
) -> Framed:
    """``who`` on a background, scaled so the face is ``face_fraction`` of the frame's shorter side.

    ``center`` is where the face's centre goes, as fractions of width and height.
    """
    crop = who.crop()
    fx, fy, fw, fh = who.face_box_in_crop
    scale = face_fraction * min(width, height) / max(fw, fh)
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ch, cw = crop.shape[:2]
    face_cx, face_cy = (fx + fw / 2) * scale, (fy + fh / 2) * scale
    left, top = round(center[0] * width - face_cx), round(center[1] * height - face_cy)
    frame = background(width, height, seed).astype(np.float32)
    # Paste the part of the crop that lands inside the frame.
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + cw), min(height, top + ch)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face would land outside the frame")
    part = crop[y0 - top : y1 - top, x0 - left : x1 - left].astype(np.float32)
    mask = _soft_mask(cw, ch)[y0 - top : y1 - top, x0 - left : x1 - left]
    frame[y0:y1, x0:x1] = part * mask + frame[y0:y1, x0:x1] * (1 - mask)
    box = (round(left + fx * scale), round(top + fy * scale), round(fw * scale), round(fh * scale))
    return Framed(np.clip(frame, 0, 255).astype(np.uint8), box, who.expression)


def landscape(who: Person, **options: Any) -> Framed:
    """A 640x480 (width x height) frame, like a laptop camera or a phone held sideways."""
    return place(who, 640, 480, **options)


def portrait(who: Person, **options: Any) -> Framed:
    """A 480x640 (width x height) frame, like a phone held upright."""
    return place(who, 480, 640, **options)


def _as_person(who: Person | str) -> Person:
    return who if isinstance(who, Person) else person(who)


class Clip:
    """Timed frames: each segment shows one person for some seconds, with a gentle sway.

    ``frame_at(t)`` fits ``PatternVideoTrack(frame_for_time=...)``. Past the end the
    last segment holds (no loop, so a long call never flips back to the start).
    """

    def __init__(
        self,
        segments: Sequence[tuple[Person | str, float]],
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        sway_px: float = 3.0,
        face_fraction: float = 0.35,
    ) -> None:
        if not segments:
            raise ValueError("a clip needs at least one segment")
        if fps <= 0 or any(seconds <= 0 for _, seconds in segments):
            raise ValueError("fps and segment lengths must be positive")
        self.width, self.height, self.fps, self.sway_px = width, height, fps, sway_px
        self.segments = [(_as_person(who), float(seconds)) for who, seconds in segments]
        self._frames = [place(who, width, height, face_fraction=face_fraction) for who, _ in self.segments]
        starts = np.cumsum([0.0] + [seconds for _, seconds in self.segments])
        self.starts: list[float] = [float(s) for s in starts[:-1]]
        self.duration = float(starts[-1])

    @property
    def switch_times(self) -> list[float]:
        """Media times where the expression changes (segment starts after the first)."""
        return self.starts[1:]

    @property
    def frame_count(self) -> int:
        return round(self.duration * self.fps)

    def _segment(self, t: float) -> int:
        index = 0
        for i, start in enumerate(self.starts):
            if t >= start:
                index = i
        return index

    def expression_at(self, t: float) -> str:
        return self.segments[self._segment(t)][0].expression

    def face_box_at(self, t: float) -> Rect:
        x, y, w, h = self._frames[self._segment(t)].face_box
        dx, dy = self._sway(t)
        return (x + dx, y + dy, w, h)

    def _sway(self, t: float) -> tuple[int, int]:
        return (
            round(self.sway_px * math.sin(2 * math.pi * t / 2.3)),
            round(self.sway_px * 0.6 * math.sin(2 * math.pi * t / 3.1 + 1.0)),
        )

    def frame_at(self, t: float) -> np.ndarray:
        """The BGR frame shown at media time ``t`` seconds (a new array)."""
        base = self._frames[self._segment(t)].image
        dx, dy = self._sway(t)
        if dx == 0 and dy == 0:
            return base.copy()
        shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
        return cv2.warpAffine(base, shift, (self.width, self.height), borderMode=cv2.BORDER_REFLECT)

    def times(self) -> list[float]:
        return [i / self.fps for i in range(self.frame_count)]

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """``(media_time, bgr)`` for every frame, made lazily (a 10 s clip would be ~280 MB at once)."""
        for t in self.times():
            yield t, self.frame_at(t)


def make_clip(segments: Sequence[tuple[Person | str, float]], **options: Any) -> Clip:
    """A clip from ``(person or expression, seconds)`` pairs; options as for ``Clip``."""
    return Clip(segments, **options)


def happy_then_angry_clip(seconds_each: float = 5.0, **options: Any) -> Clip:
    """The cue-latency clip: a happy face for ``seconds_each``, then an angry one (switch at ``seconds_each``)."""
    return Clip([(person("happy"), seconds_each), (person("angry"), seconds_each)], **options)


def write_y4m(path: str | Path, frames_bgr: Iterable[np.ndarray], fps: int) -> int:
    """Write BGR frames (all the same, even size) as YUV4MPEG2 4:2:0; returns the number of frames.

    The layout Chromium's fake capture reads: header ``YUV4MPEG2 W.. H.. F..:1 Ip A1:1 C420``
    then ``FRAME\\n`` + I420 planes per frame, BT.601 limited range (what libyuv assumes).
    """
    count = 0
    size: tuple[int, int] | None = None
    with open(path, "wb") as out:
        for bgr in frames_bgr:
            if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
                raise ValueError(f"frames must be BGR uint8, got {bgr.dtype} {bgr.shape}")
            height, width = bgr.shape[:2]
            if size is None:
                if width % 2 or height % 2:
                    raise ValueError(f"4:2:0 needs an even width and height, got {width}x{height}")
                size = (width, height)
                out.write(f"YUV4MPEG2 W{width} H{height} F{int(fps)}:1 Ip A1:1 C420\n".encode())
            elif (width, height) != size:
                raise ValueError(f"frame {count} is {width}x{height}, expected {size[0]}x{size[1]}")
            yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24").reformat(format="yuv420p")
            out.write(b"FRAME\n")
            out.write(yuv.to_ndarray().tobytes())
            count += 1
    if count == 0:
        raise ValueError("no frames to write")
    return count


def write_clip_y4m(path: str | Path, clip: Clip) -> int:
    """Write a whole clip (streamed frame by frame) as y4m at its own fps."""
    return write_y4m(path, (frame for _, frame in clip.frames()), clip.fps)


def read_y4m(path: str | Path) -> tuple[int, list[np.ndarray]]:
    """Read a file written by ``write_y4m`` back as ``(fps, [bgr, ...])`` (for tests)."""
    data = Path(path).read_bytes()
    header, _, body = data.partition(b"\n")
    tags = {token[:1]: token[1:] for token in header.decode().split()[1:]}
    width, height = int(tags["W"]), int(tags["H"])
    num, den = (int(v) for v in tags["F"].split(":"))
    size = width * height * 3 // 2
    frames = []
    offset = 0
    while offset < len(body):
        if body[offset : offset + 6] != b"FRAME\n":
            raise ValueError(f"bad frame marker at byte {offset}")
        plane = np.frombuffer(body[offset + 6 : offset + 6 + size], np.uint8).reshape(height * 3 // 2, width)
        frames.append(av.VideoFrame.from_ndarray(plane, format="yuv420p").to_ndarray(format="bgr24"))
        offset += 6 + size
    return num // den, frames
