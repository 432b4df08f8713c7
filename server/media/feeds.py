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
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
MAX_AHEAD_S = 1.0
KEYFRAME_REQUEST_EVERY_S = 0.5
PACKET_BACKLOG = 30  # reassembled frames waiting for the cues' decoder: a second of video

# What a feed hands its frame sinks: decoded frames (transcoding path) or, on the forwarding path, frames
# reassembled from its RTP packets as ``av.Packet`` (server.media.forwarding.FrameAssembler).
Media = Frame | av.Packet


def tag_codec(packet: av.Packet, codec: str) -> None:
    """Name the codec of a forwarded packet ("vp8", "h264", "opus").

    PyAV keys ``opaque`` by the object's id and drops the key when any packet holding
    it is freed, so every packet gets an object of its own, never a shared string.
    """
    packet.opaque = [codec]


def codec_of(packet: av.Packet, default: str = "") -> str:
    tag = packet.opaque
    return str(tag[0]) if isinstance(tag, list) and tag else default


class FrameSink(Protocol):
    def push(self, frame: Media) -> None: ...


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
        # Set by CallMedia when packets are forwarded: asks the sender upstream for a keyframe.
        self.keyframe_source: Callable[[], None] | None = None
        self._keyframe_asked = 0.0
        self.keyframes_requested = 0

    def request_keyframe(self) -> None:
        """A consumer needs a fresh keyframe (a new viewer, a gap): ask upstream, at most twice a second."""
        now = time.monotonic()
        if self.keyframe_source is None or now - self._keyframe_asked < KEYFRAME_REQUEST_EVERY_S:
            return
        self._keyframe_asked = now
        self.keyframes_requested += 1
        self.keyframe_source()

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

    def _restamp(self, frame: Media) -> None:
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
        if isinstance(frame, av.Packet):
            frame.dts = out
        self._last_out = out
        self._last_out_wall = wall


class FeedTrack(MediaStreamTrack):
    """An outgoing track that plays a feed on the transcoding path: what one peer sends of the other side.

    Keeps only the newest frames (a short queue for audio, where dropping is
    audible, and the last frame or two for video, where lateness is worse).
    The forwarding path sends packets instead (server.media.forwarding.RtpFeedTrack).
    """

    def __init__(self, feed: ParticipantFeed) -> None:
        super().__init__()
        self.kind = feed.kind
        self.feed = feed
        # (item, when it reached the server): the time is for the transit metric.
        self._frames: deque[tuple[Media, float]] = deque(maxlen=10 if feed.kind == "audio" else 2)
        self.last_in: float | None = None
        self._ready = asyncio.Event()
        self.frames_out = 0
        feed.subscribe(self)

    def push(self, frame: Media) -> None:
        self._frames.append((frame, time.monotonic()))
        self._ready.set()

    async def recv(self) -> Media:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame, self.last_in = self._frames.popleft()
        self.frames_out += 1
        return frame

    def stop(self) -> None:
        self.feed.unsubscribe(self)
        super().stop()
        # Wake a pending recv() so it sees the track ended.
        self._ready.set()


class GatedFeedTrack(FeedTrack):
    """A feed track that passes media only while ``is_open()``: the supervisor's voice reaches the rep only
    in a whisper or a barge-in, and the customer only in a barge-in. Closed, nothing of the feed is queued,
    so nothing of it can be sent; opened, frames flow again (re-encoded, so from any frame)."""

    def __init__(self, feed: ParticipantFeed, is_open: Callable[[], bool]) -> None:
        super().__init__(feed)
        self.is_open = is_open
        self.withheld = 0

    def push(self, frame: Media) -> None:
        if not self.is_open():
            self.withheld += 1
            return
        super().push(frame)

    def flush(self) -> None:
        """The gate closed: what waits to be sent is not sent either."""
        self.withheld += len(self._frames)
        self._frames.clear()


class DecodingSink:
    """Decodes forwarded packets in a thread and hands the newest picture to a frame sink.

    Only the emotion cues need pixels of a forwarded call, and only while the
    customer agrees: decoding stays off the event loop and stops with :meth:`close`.
    """

    def __init__(self, sink: FrameSink, loop: asyncio.AbstractEventLoop) -> None:
        self._sink = sink
        self._loop = loop
        self._queue: queue.Queue[av.Packet | None] = queue.Queue(maxsize=PACKET_BACKLOG)
        # Started by the first packet: a call whose frames are decoded already needs no thread.
        self._thread: threading.Thread | None = None
        self._need_keyframe = True
        self.decoded = 0

    def push(self, frame: Media) -> None:
        if not isinstance(frame, av.Packet):
            self._sink.push(frame)
            return
        if self._need_keyframe and not frame.is_keyframe:
            return
        self._need_keyframe = False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="feed-decoder", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self._need_keyframe = True  # decoding cannot continue from a gap: wait for the next keyframe

    def close(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _run(self) -> None:
        context: Any = None  # a video or audio decoder, made for the first packet
        while True:
            packet = self._queue.get()
            if packet is None:
                return
            codec = codec_of(packet, "vp8")
            if context is None or context.name != codec:
                context = av.CodecContext.create(codec, "r")
            try:
                frames = context.decode(packet)
            except av.FFmpegError:
                continue
            for frame in frames:
                frame.pts, frame.time_base = packet.pts, packet.time_base
                self.decoded += 1
                self._loop.call_soon_threadsafe(self._sink.push, frame)
