"""What the clients' cameras show, and the video tracks that send it at 30 fps.

``--video`` picks the picture (a real face swaying on a wall, or the scrolling test gradient); ``--send`` picks
the track: ``encode`` hands raw frames to aiortc's VP8 encoder as a browser would, ``canned`` replays a VP8 loop
the conductor encoded once (``write_canned_loops``) so that the clients cost little, and their audio is a tone
encoded once to Opus (``CannedAudioTrack``) instead of encoded live.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

from bench.common import progress

FPS = 30
WIDTH, HEIGHT = 640, 480
VIDEO_CLOCK = 90_000
CANNED_LOOP_S = 4.0  # --send canned: the loop's length
CANNED_KEYFRAME_EVERY = FPS  # a keyframe each second: a lost picture heals within it, light receivers check it
CANNED_BITRATE = 500_000  # aiortc's starting bitrate, where its live encoder stays over loopback

ImageAt = Callable[[float], np.ndarray]  # media time (s) -> yuv420p planes, HEIGHT * 3 / 2 rows of WIDTH


# --- Pictures --------------------------------------------------------------------------------------------------------


def to_yuv(bgr: np.ndarray) -> np.ndarray:
    return VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p").to_ndarray()


def picture_count(video: str) -> int:
    """How many different pictures the participants show (they take turns)."""
    if video == "pattern":
        return 1
    from tests.support import faces

    return len(faces.people())


class FacePoses:
    """A person on a wall, swaying a few pixels like a hand-held phone (tests/support/faces.py).

    The sway moves in whole pixels, so there are few distinct poses: each is drawn and converted to
    yuv420p once (``prepare``), which leaves the clients only the work a camera client has.
    """

    def __init__(self, picture: int) -> None:
        from tests.support import faces

        who = faces.people()[picture]
        self.clip = faces.make_clip([(who, 1.0)], width=WIDTH, height=HEIGHT)
        self._poses: dict[tuple[int, int, int, int], np.ndarray] = {}

    def __call__(self, t: float) -> np.ndarray:
        key = self.clip.face_box_at(t)  # one segment: the box moves exactly when the picture does
        if key not in self._poses:
            self._poses[key] = to_yuv(self.clip.frame_at(t))
        return self._poses[key]

    def prepare(self, seconds: float = 10.0) -> None:
        for i in range(round(seconds * FPS)):
            self(i / FPS)


class ScrollingPattern:
    """tests/support/clients.py's PatternVideoTrack picture: a colour gradient scrolling 4 px a frame."""

    def __init__(self) -> None:
        y = np.linspace(0, 255, HEIGHT, dtype=np.uint8)[:, None]
        x = np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, :]
        planes = [np.broadcast_to(x, (HEIGHT, WIDTH)), np.broadcast_to(y, (HEIGHT, WIDTH)), np.full_like(x, 128)]
        self._base = np.dstack(np.broadcast_arrays(*planes))
        self._shifts: dict[int, np.ndarray] = {}

    def __call__(self, t: float) -> np.ndarray:
        shift = round(t * FPS) * 4 % WIDTH
        if shift not in self._shifts:
            self._shifts[shift] = to_yuv(np.ascontiguousarray(np.roll(self._base, shift, axis=1)))
        return self._shifts[shift]

    def prepare(self) -> None:
        for i in range(WIDTH // 4):
            self(i / FPS)


@functools.cache
def image_source(video: str, picture: int) -> FacePoses | ScrollingPattern:
    """One source per picture, shared by the tracks that show it."""
    return FacePoses(picture) if video == "faces" else ScrollingPattern()


# --- Canned VP8 loops ------------------------------------------------------------------------------------------------


def encode_loop(image_at: ImageAt) -> list[bytes]:
    """CANNED_LOOP_S of a picture as VP8 frames, with aiortc's realtime settings and a keyframe first."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.bit_rate = CANNED_BITRATE
    codec.thread_count = 1  # the conductor stays single-threaded (it forks children)
    frames = round(CANNED_LOOP_S * FPS)
    codec.gop_size = CANNED_KEYFRAME_EVERY
    codec.qmin, codec.qmax = 2, 56
    rate = str(CANNED_BITRATE)
    codec.options = {
        **{"bufsize": rate, "minrate": rate, "maxrate": rate, "cpu-used": "-6", "deadline": "realtime"},
        **{"lag-in-frames": "0", "noise-sensitivity": "4", "overshoot-pct": "15", "partitions": "0"},
        **{"static-thresh": "1", "undershoot-pct": "100"},
    }
    loop = []
    for i in range(frames):
        frame = VideoFrame.from_ndarray(image_at(i / FPS), format="yuv420p")
        frame.pts, frame.time_base = i, fractions.Fraction(1, FPS)
        if i % CANNED_KEYFRAME_EVERY == 0:
            frame.pict_type = av.video.frame.PictureType.I
        loop.append(b"".join(bytes(packet) for packet in codec.encode(frame)))
    if not all(loop):
        raise RuntimeError("the VP8 encoder held frames back; canned video needs one packet per frame")
    return loop


def canned_file(directory: Path, video: str, picture: int) -> Path:
    return directory / f"{video}-{picture}.vp8"


def write_canned_loops(directory: Path, video: str) -> Path:
    """Encode every picture's loop once, in the conductor before anything is timed, for the workers to replay."""
    directory.mkdir()
    began = time.monotonic()
    for picture in range(picture_count(video)):
        frames = encode_loop(image_source(video, picture))
        data = b"".join(struct.pack(">I", len(frame)) + frame for frame in frames)
        canned_file(directory, video, picture).write_bytes(data)
    progress(f"encoded {picture_count(video)} VP8 loop(s) of {CANNED_LOOP_S:g} s in {time.monotonic() - began:.1f} s")
    return directory


@functools.cache
def read_canned_loop(directory: Path, video: str, picture: int) -> list[bytes]:
    data = canned_file(directory, video, picture).read_bytes()
    frames, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        frames.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return frames


# --- Tracks ----------------------------------------------------------------------------------------------------------


class PacedTrack(VideoStreamTrack):
    """Video at FPS in real time; subclasses make the item for frame number ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._began: float | None = None

    async def recv(self) -> Any:
        if self._began is None:
            self._began = time.monotonic()
        delay = self._began + self._count / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        item = self.make(self._count)
        item.pts, item.time_base = self._count * VIDEO_CLOCK // FPS, fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return item

    def make(self, count: int) -> Any:
        raise NotImplementedError


class LiveTrack(PacedTrack):
    """Raw frames, which aiortc encodes (VP8) as a browser would: the realistic client, and the costly one."""

    def __init__(self, image_at: ImageAt) -> None:
        super().__init__()
        self._image_at = image_at

    def make(self, count: int) -> VideoFrame:
        return VideoFrame.from_ndarray(self._image_at(count / FPS), format="yuv420p")


class CannedTrack(PacedTrack):
    """Ready VP8 frames: aiortc only packetizes them, so the client spends nothing on encoding.

    It ignores the server's keyframe requests and bitrate estimates; the loop's own keyframe heals losses.
    """

    def __init__(self, loop: Sequence[bytes]) -> None:
        super().__init__()
        self._frames = loop

    def make(self, count: int) -> av.Packet[Any]:
        return av.Packet(self._frames[count % len(self._frames)])


AUDIO_RATE, AUDIO_FRAME = 48_000, 960  # Opus: 20 ms frames


@functools.cache
def canned_tone() -> list[bytes]:
    """A second of tests/support/clients.py's 440 Hz tone as Opus frames, encoded once by aiortc's own encoder."""
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    encoder = get_encoder(RTCRtpCodecParameters(mimeType="audio/opus", clockRate=AUDIO_RATE, channels=2))
    frames = []
    for i in range(AUDIO_RATE // AUDIO_FRAME):
        t = (np.arange(AUDIO_FRAME) + i * AUDIO_FRAME) / AUDIO_RATE
        pcm = (np.sin(2 * np.pi * 440.0 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, i * AUDIO_FRAME
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        payloads, _ = encoder.encode(frame)
        frames += payloads
    return frames


class CannedAudioTrack(MediaStreamTrack):
    """The tone as ready Opus frames, every 20 ms: aiortc sends them as they are (no encoder thread, no audio
    level computed), so a client's audio costs little more than its packets."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames = canned_tone()
        self._count = 0
        self._began: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self._began is None:
            self._began = time.monotonic()
        delay = self._began + self._count * AUDIO_FRAME / AUDIO_RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._frames[self._count % len(self._frames)])
        packet.pts, packet.time_base = self._count * AUDIO_FRAME, fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return packet


def video_track(video: str, picture: int, canned: Path | None) -> MediaStreamTrack:
    if canned is not None:
        return CannedTrack(read_canned_loop(canned, video, picture))
    return LiveTrack(image_source(video, picture))
