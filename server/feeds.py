"""Participant feeds: one continuous stream per participant and kind, across reconnects.

A customer who reloads the page arrives on a new peer connection with new
tracks. The feed hides that: it reads whichever track is attached, keeps the
timestamps monotonic, and pushes every frame to its sinks (the other side's
outgoing track, and later the recorder and the emotion pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Protocol

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
MAX_AHEAD_S = 1.0


class FrameSink(Protocol):
    def push(self, frame: Frame) -> None: ...


class ParticipantFeed:
    """Reads the attached track and fans its frames out to sinks, newest first."""

    def __init__(self, kind: str, label: str = "") -> None:
        self.kind = kind
        self.label = label
        self.frames_in = 0
        self.last_frame_at: float | None = None
        self._sinks: list[FrameSink] = []
        self._track: MediaStreamTrack | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        # Timestamp rewriting state: output pts stay monotonic across source switches.
        self._offset = 0
        self._last_in: int | None = None
        self._last_out: int | None = None
        self._last_out_wall = 0.0
        self._switched = True

    def attach(self, track: MediaStreamTrack) -> None:
        if self._closed:
            return
        self.detach()
        self._track = track
        self._switched = True
        self._reader = asyncio.create_task(self._read(track), name=f"feed-{self.label}-{self.kind}")

    def detach(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        self._track = None

    def subscribe(self, sink: FrameSink) -> None:
        self._sinks.append(sink)

    def unsubscribe(self, sink: FrameSink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)

    @property
    def attached(self) -> bool:
        return self._track is not None

    async def aclose(self) -> None:
        self._closed = True
        reader = self._reader
        self.detach()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        self._sinks.clear()

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, Frame) or frame.pts is None:
                continue
            self._restamp(frame)
            self.frames_in += 1
            self.last_frame_at = time.monotonic()
            for sink in list(self._sinks):
                try:
                    sink.push(frame)
                except Exception:  # one broken sink must not starve the others
                    log.exception("sink %r failed on %s %s", sink, self.label, self.kind)

    def _restamp(self, frame: Frame) -> None:
        pts = int(frame.pts or 0)
        wall = time.monotonic()
        rate = 1 / float(frame.time_base) if frame.time_base else VIDEO_CLOCK
        # A sender's clock can jump ahead (seen as the rep's camera stops): never let media time run
        # far ahead of the wall clock, or recordings and the QA timeline stretch by the jump.
        jumped = self._last_in is not None and (pts - self._last_in) / rate > (wall - self._last_out_wall) + MAX_AHEAD_S
        if self._switched or self._last_in is None or self._last_out is None or pts <= self._last_in or jumped:
            if self._last_out is None:
                target = 0
            else:
                # Continue after the last frame out, leaving the real wall-clock gap.
                step = max(1, int(rate / 50))
                gap = int((wall - self._last_out_wall) * rate)
                target = self._last_out + max(step, gap)
            self._offset = target - pts
            self._switched = False
        self._last_in = pts
        out = pts + self._offset
        frame.pts = out
        self._last_out = out
        self._last_out_wall = wall


class FeedTrack(MediaStreamTrack):
    """An outgoing track that plays a feed: what one peer sends of the other side.

    Keeps only the newest frames (a short queue for audio, where dropping is
    audible, and the last frame or two for video, where lateness is worse).
    """

    def __init__(self, feed: ParticipantFeed) -> None:
        super().__init__()
        self.kind = feed.kind
        self._feed = feed
        self._frames: deque[Frame] = deque(maxlen=10 if feed.kind == "audio" else 2)
        self._ready = asyncio.Event()
        self.frames_out = 0
        feed.subscribe(self)

    def push(self, frame: Frame) -> None:
        self._frames.append(frame)
        self._ready.set()

    async def recv(self) -> Frame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame = self._frames.popleft()
        self.frames_out += 1
        return frame

    def stop(self) -> None:
        self._feed.unsubscribe(self)
        super().stop()
        # Wake a pending recv() so it sees the track ended.
        self._ready.set()
