"""How a bench client takes in the media it receives: ``full`` decodes every frame as a browser would, ``light``
counts and checks the encoded frames and decodes only one in 30, so the clients cost little and the bench measures
the server.

Light receive mode (``--receive light``, the default for the capacity figures): aiortc still does everything up to
a complete encoded frame (SRTP, RTP statistics, NACK, RTX, the jitter buffer's reassembly), then, instead of
handing the frame to its decoder thread, hands it to ``LightReceiver.put``, which

* counts frames (video and audio), keyframes, and frames missing between two that arrived (the RTP timestamp moved
  by more than one frame time: ``gaps``);
* decodes a video keyframe once at least ``SAMPLE_EVERY`` frames have passed since the last decoded one, and checks
  the picture: a small thumbnail of it must be nearest to one of the pictures the other side sends
  (``Expected``), within ``MAX_THUMB_DIFF``; ``checks_ok`` / ``checks_bad`` count the outcomes;
* asks the sender for a keyframe (PLI) when none came for ``PLI_AFTER_FRAMES`` frames, so that a path whose encoder
  sends keyframes rarely (the server's own on the transcoding path, a client's live encoder) is still checked. The
  canned loops (sources.py) carry a keyframe every ``FPS`` frames, so on the forwarding path no PLI is sent.

aiortc internals used here (aiortc 1.16; checked by ``install`` at run time, which raises if they moved):

* ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue``: the ``queue.Queue`` the receiver ``put``s
  ``(codec, JitterFrame)`` tuples on from the event loop (``_handle_rtp_packet``), and ``None`` on stop; its decoder
  thread ``get``s from it. ``install`` replaces it, before ``receive()`` starts that thread, with a
  ``LightReceiver`` (``put`` counts, ``get`` blocks until the stop ``None``), so the decoder thread idles and the
  track's ``recv()`` gets nothing but its end.
* ``JitterFrame.data`` (the depayloaded frame: VP8 bitstream, or Opus) and ``JitterFrame.timestamp`` (RTP time,
  mapped to start at 0 by the receiver's ``TimestampMapper``).
* ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` (a coroutine) to ask for a keyframe; the SSRC comes from the public
  ``getSynchronizationSources()``.

A media.restart (a new peer connection) is not followed: the bench's calls never restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpReceiver

from bench.calls.sources import FPS, image_source, picture_count

RECEIVE_MODES = ("light", "full")
SAMPLE_EVERY = 30  # decode (at least) this many frames apart: one in 30
PLI_AFTER_FRAMES = 2 * FPS  # no keyframe for this long: ask for one
MAX_THUMB_DIFF = 24.0  # mean absolute difference (0-255) of a decoded thumbnail to the nearest reference
THUMB = (12, 16)  # rows, columns of the luma thumbnail
QUEUE_ATTRIBUTE = "_RTCRtpReceiver__decoder_queue"


def thumbnail(yuv: np.ndarray) -> np.ndarray:
    """A coarse picture of a yuv420p frame (HEIGHT * 3 / 2 rows): block means of luma, plus the two chroma means."""
    height = yuv.shape[0] * 2 // 3
    luma = yuv[:height].astype(np.float32)
    rows, cols = THUMB
    h, w = height // rows, luma.shape[1] // cols
    blocks = luma[: h * rows, : w * cols].reshape(rows, h, cols, w).mean(axis=(1, 3)).ravel()
    quarter = height // 4
    u, v = yuv[height : height + quarter], yuv[height + quarter :]
    return np.concatenate([blocks, [float(u.mean()), float(v.mean())]])


@dataclass(frozen=True)
class Expected:
    """What the other side of a call sends: thumbnails of every picture's frames, and which picture is theirs."""

    picture: int
    references: tuple[tuple[int, np.ndarray], ...]  # (picture, thumbnail)

    @classmethod
    def of(cls, video: str, picture: int) -> Expected:
        return cls(picture, reference_thumbnails(video))

    def check(self, yuv: np.ndarray) -> tuple[bool, int, float]:
        """(intact, nearest picture, its difference): the picture must be the expected one, and close to it."""
        thumb = thumbnail(yuv)
        diffs = [(float(np.abs(thumb - ref).mean()), pic) for pic, ref in self.references]
        diff, nearest = min(diffs)
        return nearest == self.picture and diff <= MAX_THUMB_DIFF, nearest, diff


_REFERENCES: dict[str, tuple[tuple[int, np.ndarray], ...]] = {}


def reference_thumbnails(video: str) -> tuple[tuple[int, np.ndarray], ...]:
    """Thumbnails of every picture over the canned loop's length (faces sway, the pattern scrolls)."""
    if video not in _REFERENCES:
        refs = []
        for picture in range(picture_count(video)):
            source = image_source(video, picture)
            times = [i / FPS for i in range(0, 4 * FPS, 1 if video == "pattern" else FPS // 2)]
            refs += [(picture, thumbnail(source(t))) for t in times]
        _REFERENCES[video] = tuple(refs)
    return _REFERENCES[video]


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 for a keyframe, which then carries the start
    code 9d 01 2a."""
    return len(data) >= 10 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"


@dataclass
class LightReceiver:
    """Stands in for an aiortc receiver's decoder queue: counts and checks encoded frames (see the module)."""

    kind: str
    receiver: RTCRtpReceiver
    expected: Expected | None = None
    frames: int = 0
    keyframes: int = 0
    gaps: int = 0  # frames missing between frames that arrived, from the RTP timestamps
    checks_ok: int = 0
    checks_bad: int = 0
    plis: int = 0
    bad: list[str] = field(default_factory=list)  # the first few failed checks, for the log
    _stop: queue.Queue[Any] = field(default_factory=queue.Queue)
    _last_ts: int | None = None
    _since_sample: int = SAMPLE_EVERY  # the first keyframe is checked
    _since_keyframe: int = 0
    _decoder: Any = None
    _pli_task: asyncio.Task[None] | None = None

    # --- the queue.Queue side aiortc uses ---

    def put(self, task: Any) -> None:
        if task is None:
            self._stop.put(None)
            return
        codec, frame = task
        self.frames += 1
        self._count_gap(frame.timestamp, codec.clockRate)
        if self.kind == "video":
            self._video(frame.data)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._stop.get(*args, **kwargs)

    # --- checks ---

    def _count_gap(self, timestamp: int, clock_rate: int) -> None:
        step = clock_rate // FPS if self.kind == "video" else clock_rate // 50  # 30 fps, 20 ms Opus frames
        if self._last_ts is not None:
            delta = (timestamp - self._last_ts) % (1 << 32)
            if delta < (1 << 31) and delta > step * 3 // 2:
                self.gaps += round(delta / step) - 1
        self._last_ts = timestamp

    def _video(self, data: bytes) -> None:
        self._since_sample += 1
        if not is_vp8_keyframe(data):
            self._since_keyframe += 1
            if self._since_keyframe >= PLI_AFTER_FRAMES:
                self._since_keyframe = 0
                self._ask_keyframe()
            return
        self.keyframes += 1
        self._since_keyframe = 0
        if self._since_sample >= SAMPLE_EVERY:
            self._since_sample = 0
            self._check(data)

    def _check(self, data: bytes) -> None:
        if self._decoder is None:
            self._decoder = av.CodecContext.create("libvpx", "r")
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError as exc:
            self._fail(f"keyframe did not decode: {exc}")
            return
        for frame in frames:
            if self.expected is None:
                self.checks_ok += 1
                continue
            intact, nearest, diff = self.expected.check(frame.to_ndarray(format="yuv420p"))
            if intact:
                self.checks_ok += 1
            else:
                self._fail(f"picture {nearest} (difference {diff:.1f}) where {self.expected.picture} was sent")

    def _fail(self, why: str) -> None:
        self.checks_bad += 1
        if len(self.bad) < 5:
            self.bad.append(why)

    def _ask_keyframe(self) -> None:
        if self._pli_task is not None and not self._pli_task.done():
            return
        sources = self.receiver.getSynchronizationSources()
        if sources:
            self.plis += 1
            self._pli_task = asyncio.ensure_future(self.receiver._send_rtcp_pli(sources[0].source))

    def counters(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "keyframes": self.keyframes,
            "gaps": self.gaps,
            "checks_ok": self.checks_ok,
            "checks_bad": self.checks_bad,
            "plis": self.plis,
        }


def install(receivers: Sequence[tuple[str, RTCRtpReceiver]], expected: Expected | None) -> dict[str, LightReceiver]:
    """Put a LightReceiver in place of each receiver's decoder queue: before negotiating (``receive()`` starts the
    decoder thread on whatever queue is there then). Returns them by kind."""
    out = {}
    for kind, receiver in receivers:
        if not isinstance(getattr(receiver, QUEUE_ATTRIBUTE, None), queue.Queue):
            raise RuntimeError(f"aiortc moved {QUEUE_ATTRIBUTE}: bench/calls/receive.py needs updating")
        if not callable(getattr(receiver, "_send_rtcp_pli", None)):
            raise RuntimeError("aiortc moved RTCRtpReceiver._send_rtcp_pli: bench/calls/receive.py needs updating")
        light = LightReceiver(kind, receiver, expected if kind == "video" else None)
        setattr(receiver, QUEUE_ATTRIBUTE, light)
        out[kind] = light
    return out


async def stop(lights: dict[str, LightReceiver]) -> None:
    for light in lights.values():
        if light._pli_task is not None:
            light._pli_task.cancel()
            with contextlib.suppress(BaseException):
                await light._pli_task
