"""The emotion pipeline: one app-wide service, one stream per call.

::

    service = EmotionService()                  # owns the worker process(es)
    await service.start()                       # spawns; the model loads in the background
    stream = service.open_stream(session_id)    # per call
    stream.push_frame(video_frame, media_time)  # sync, O(1), never blocks; or stream.push(frame)
    async for event in stream:                  # EmotionUpdate | EmotionStatus
        ...
    rows = stream.take_timeline()               # per-second rows for storage
    await stream.aclose()
    await service.aclose()

Flow control: each stream holds at most one frame in flight and one pending
frame (the newest; a newer push replaces it), so a slow or dead worker can never
grow a queue. Streams with a pending frame wait in a round-robin line for the
next free worker. The sampler (per stream) decides which pushed frames are
worth keeping at all.

Failure handling: an analysis that outlives ``analysis_timeout`` or a worker
that dies gets the worker killed and restarted after a backoff (0.5 s doubling
to 30 s, reset by the next good analysis); streams report ``degraded`` meanwhile
and ``ok`` once analyses flow again. A detector exception on one frame marks
that stream ``degraded`` until its next good frame. If the stack cannot run at
all (fer missing), every stream reports ``unavailable`` once and frames are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import av

from .aggregate import Aggregator, EmotionSettings, TimelineReducer, UpdateThrottle
from .backends import DetectorFailed, ProcessWorker, ThreadWorker, Worker, WorkerError, WorkerUnavailable
from .frames import DEFAULT_MAX_SIDE, Frame, InvalidFrame, analysed_size, check_frame, check_media_time
from .sampler import AdaptiveSampler, Observation, Sampler
from .types import EmotionEvent, EmotionStatus, EmotionUpdate, FaceEmotion, Status, TimelineRow, largest_face
from .worker import DEFAULT_DETECTOR, DetectorFactory, describe

log = logging.getLogger(__name__)

Mode = Literal["process", "thread"]

# Consumers that stop reading lose the oldest events beyond this many (updates arrive at ~2/s).
MAX_BUFFERED_EVENTS = 64


@dataclass(slots=True)
class _Pending:
    frame: Frame
    media_time: float


class EmotionStream:
    """One call's video: push frames in, iterate events out. Made by :meth:`EmotionService.open_stream`."""

    def __init__(
        self, service: EmotionService, key: str, stream_id: int, settings: EmotionSettings, sampler: Sampler
    ) -> None:
        self.key = key
        self.settings = settings
        self.sampler = sampler
        self._service = service
        self._id = stream_id
        self._aggregator = Aggregator(settings)
        self._throttle = UpdateThrottle(settings.updates_per_second)
        self._timeline = TimelineReducer()
        self._rows: list[TimelineRow] = []
        self._pending: _Pending | None = None
        self._in_flight = False
        self._queued = False
        self._closed = False
        self._events: collections.deque[EmotionEvent] = collections.deque()
        self._wakeup = asyncio.Event()
        self._status: Status = service.status
        self._status_message = service.status_message
        self._emit(EmotionStatus(self._status, self._status_message))
        self._warned_invalid = False
        #: The latest reading, including those the throttle kept from consumers.
        self.last_update: EmotionUpdate | None = None
        # Counters: what happened to pushed frames.
        self.frames_pushed = 0
        self.frames_sampled = 0
        self.frames_replaced = 0
        self.frames_analysed = 0
        self.frames_rejected = 0
        self.analysis_errors = 0
        self.events_dropped = 0

    # -- producer side (event loop, sync, O(1)) --

    def push_frame(self, frame: Frame, media_time: float) -> bool:
        """Offer a frame at ``media_time`` seconds. True if kept for analysis (it may still be replaced).

        Raises :class:`InvalidFrame` (a ValueError) for something that is not a
        frame; the stream carries on. Never blocks, never queues more than one frame.
        An array must not be modified after it is pushed (it is copied only when analysed).
        """
        if self._closed:
            return False
        self.frames_pushed += 1
        try:
            check_frame(frame)
            when = check_media_time(media_time)
        except InvalidFrame:
            self.frames_rejected += 1
            raise
        if self._service.status == "unavailable" or not self.sampler(when, frame):
            return False
        self.frames_sampled += 1
        if self._pending is not None:
            self.frames_replaced += 1
        self._pending = _Pending(frame, when)
        self._service._offer(self)
        return True

    def push(self, frame: object) -> None:
        """Frame-sink form of :meth:`push_frame`, for a track reader (``server.media.feeds.FrameSink``).

        The media time is the frame's own timestamp (``frame.time``); frames that
        cannot be analysed (audio, None, ...) are skipped with one warning per stream.
        """
        media_time = frame.time if isinstance(frame, av.VideoFrame) else None
        if media_time is None:
            media_time = asyncio.get_running_loop().time() - self._service._epoch
        try:
            self.push_frame(frame, media_time)  # type: ignore[arg-type]  # validated inside
        except InvalidFrame as exc:
            self._warn_invalid(exc)

    # -- consumer side --

    @property
    def status(self) -> Status:
        return self._status

    @property
    def status_message(self) -> str:
        return self._status_message

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> EmotionStream:
        return self

    async def __anext__(self) -> EmotionEvent:
        while not self._events:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._events.popleft()

    def take_timeline(self) -> list[TimelineRow]:
        """Per-second rows completed since the last call (after close, including the last second)."""
        rows, self._rows = self._rows, []
        return rows

    def stats(self) -> dict[str, int]:
        return {
            "frames_pushed": self.frames_pushed,
            "frames_sampled": self.frames_sampled,
            "frames_replaced": self.frames_replaced,
            "frames_analysed": self.frames_analysed,
            "frames_rejected": self.frames_rejected,
            "analysis_errors": self.analysis_errors,
            "events_dropped": self.events_dropped,
            "pending": int(self._pending is not None),
            "in_flight": int(self._in_flight),
        }

    async def aclose(self) -> None:
        """Stop analysing; iteration ends after the buffered events. Idempotent."""
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = None
        self._rows.extend(self._timeline.flush())
        self._service._forget(self)
        self._wakeup.set()

    # -- called by the service --

    def _take(self) -> _Pending | None:
        pending, self._pending = self._pending, None
        return pending

    def _emit(self, event: EmotionEvent) -> None:
        if len(self._events) >= MAX_BUFFERED_EVENTS:
            self._events.popleft()
            self.events_dropped += 1
        self._events.append(event)
        self._wakeup.set()

    def _set_status(self, status: Status, message: str) -> None:
        if self._closed or (status, message) == (self._status, self._status_message):
            return
        self._status, self._status_message = status, message
        self._emit(EmotionStatus(status, message))

    def _on_result(self, media_time: float, faces: list[FaceEmotion], latency_s: float, size: tuple[int, int]) -> None:
        """One analysis's faces; ``size`` is (width, height) of the image the detector saw."""
        if self._closed:
            return
        self.frames_analysed += 1
        self.sampler.record(latency_s)
        if self._status != "ok" and self._service.status == "ok":
            self._set_status("ok", self._service.status_message)
        update = self._aggregator.update(media_time, faces)
        self.last_update = update
        self.sampler.observe(observation(update, faces, size))
        self._rows.extend(self._timeline.add(update))
        if self._throttle.allow(update):
            self._emit(update)

    def _on_detector_error(self, message: str) -> None:
        self.analysis_errors += 1
        log.warning("emotion detector failed on a frame of %s: %s", self.key, message)
        if self._service.status == "ok":
            self._set_status("degraded", f"emotion detector failed on a frame: {message}")

    def _warn_invalid(self, exc: Exception) -> None:
        if not self._warned_invalid:
            self._warned_invalid = True
            log.warning("emotion stream %s skips invalid frames: %s", self.key, exc)


def observation(update: EmotionUpdate, faces: list[FaceEmotion], size: tuple[int, int]) -> Observation:
    """What the sampler is told about one analysis: the largest face, its box as fractions of the frame."""
    face = largest_face(faces)
    width, height = size
    box = None if face is None else (face.box.x / width, face.box.y / height, face.box.w / width, face.box.h / height)
    return Observation(
        update.media_time,
        None if face is None else face.dominant,
        {} if face is None else dict(face.scores),
        box,
        update.smoothed,
        update.flag_active,
    )


@dataclass
class _Slot:
    index: int
    worker: Worker | None = None
    state: Status = "starting"
    message: str = "emotion analysis is starting (loading the model)"
    task: asyncio.Task[None] | None = None


class EmotionService:
    """App-wide emotion analysis: owns the worker(s) and schedules every open stream's frames.

    ``detector`` builds the detector inside the worker (see ``DetectorFactory``);
    the default is the fast path. ``mode="thread"`` runs it on a thread of this
    process instead (tests, development). ``workers`` processes share the streams
    round-robin (each process runs one inference at a time; fer's model cache is per process).
    """

    def __init__(
        self,
        detector: DetectorFactory = DEFAULT_DETECTOR,
        *,
        settings: EmotionSettings | None = None,
        mode: Mode = "process",
        workers: int = 1,
        max_frame_side: int = DEFAULT_MAX_SIDE,
        analysis_timeout: float = 5.0,
        start_timeout: float = 180.0,
        restart_backoff: tuple[float, float] = (0.5, 30.0),
        sampler_factory: Callable[[EmotionSettings], Sampler] | None = None,
    ) -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be 'process' or 'thread', got {mode!r}")
        if workers < 1 or max_frame_side < 32 or analysis_timeout <= 0 or start_timeout <= 0:
            raise ValueError("need workers >= 1, max_frame_side >= 32 and positive timeouts")
        if isinstance(detector, str) and ":" not in detector:
            raise ValueError(f"detector path must look like 'package.module:attribute', got {detector!r}")
        self.detector = detector
        self.settings = settings or EmotionSettings()
        self.mode: Mode = mode
        self.max_frame_side = max_frame_side
        self.analysis_timeout = analysis_timeout
        self.start_timeout = start_timeout
        self.restart_backoff = restart_backoff
        self._sampler_factory = sampler_factory or (
            lambda s: AdaptiveSampler.for_settings(s.analysis_fps, s.raise_threshold)
        )
        self._slots = [_Slot(i) for i in range(workers)]
        self._streams: dict[str, EmotionStream] = {}
        self._ids = itertools.count(1)
        self._ready: collections.deque[EmotionStream] = collections.deque()
        self._work = asyncio.Event()
        self._state_changed = asyncio.Event()
        self._status: Status = "starting"
        self._status_message = self._slots[0].message
        self._started = False
        self._closed = False
        self._epoch = 0.0
        #: Worker (re)starts so far, for monitoring and tests.
        self.restarts = 0

    # -- lifecycle --

    async def start(self) -> None:
        """Start the worker(s) in the background; returns at once (see :meth:`wait_ready`)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        self._epoch = asyncio.get_running_loop().time()
        for slot in self._slots:
            slot.task = asyncio.create_task(self._run_slot(slot), name=f"emotion-slot-{slot.index}")

    async def wait_ready(self, timeout: float | None = None) -> Status:
        """Wait until the analysis runs (``ok``) or cannot (``unavailable``); returns the status then."""
        self._ensure_started()

        async def settled() -> Status:
            while self._status not in ("ok", "unavailable") and not self._closed:
                self._state_changed.clear()
                await self._state_changed.wait()
            return self._status

        return await asyncio.wait_for(settled(), timeout)

    async def aclose(self) -> None:
        """Close every stream, stop the workers (killing them if need be). Idempotent."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams.values()):
            stream.close()
        # Wake idle slots too: asyncio.wait_for (3.11) can swallow a cancel that races a result,
        # so the slots also stop on their own when they see the service closed.
        self._work.set()
        tasks = [slot.task for slot in self._slots if slot.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in self._slots:
            if slot.worker is not None:
                await slot.worker.stop()
                slot.worker = None
        self._state_changed.set()

    async def __aenter__(self) -> EmotionService:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- streams --

    def open_stream(
        self, key: str, *, settings: EmotionSettings | None = None, sampler: Sampler | None = None
    ) -> EmotionStream:
        """A new stream for one call's video. ``key`` (e.g. the session id) must not be open already."""
        if self._closed:
            raise RuntimeError("emotion service is closed")
        if key in self._streams:
            raise ValueError(f"emotion stream {key!r} is already open")
        self._ensure_started()
        settings = settings or self.settings
        stream = EmotionStream(self, key, next(self._ids), settings, sampler or self._sampler_factory(settings))
        self._streams[key] = stream
        return stream

    @property
    def streams(self) -> dict[str, EmotionStream]:
        return dict(self._streams)

    @property
    def status(self) -> Status:
        return self._status

    @property
    def status_message(self) -> str:
        return self._status_message

    @property
    def worker_pids(self) -> list[int]:
        return [pid for slot in self._slots if slot.worker is not None and (pid := slot.worker.pid) is not None]

    def _offer(self, stream: EmotionStream) -> None:
        if not stream._queued and not stream._in_flight:
            stream._queued = True
            self._ready.append(stream)
            self._work.set()

    def _forget(self, stream: EmotionStream) -> None:
        if self._streams.get(stream.key) is stream:
            del self._streams[stream.key]
        for slot in self._slots:
            if slot.worker is not None:
                slot.worker.forget(stream._id)

    async def _next_stream(self) -> EmotionStream | None:
        """The next stream with a pending frame (marked in flight), or None once the service closes."""
        while not self._closed:
            while self._ready:
                stream = self._ready.popleft()
                stream._queued = False
                if not stream._closed and stream._pending is not None and not stream._in_flight:
                    stream._in_flight = True
                    return stream
            self._work.clear()
            await self._work.wait()
        return None

    # -- health --

    def _set_slot(self, slot: _Slot, state: Status, message: str) -> None:
        slot.state, slot.message = state, message
        states = [s.state for s in self._slots]
        # The best slot speaks for the service: one working worker means analyses flow.
        for candidate in ("ok", "unavailable", "degraded", "starting"):
            if candidate in states:
                chosen = next(s for s in self._slots if s.state == candidate)
                break
        if (chosen.state, chosen.message) == (self._status, self._status_message):
            return
        self._status, self._status_message = chosen.state, chosen.message
        log.log(
            logging.WARNING if chosen.state in ("degraded", "unavailable") else logging.INFO,
            "emotion analysis %s: %s",
            chosen.state,
            chosen.message,
        )
        if chosen.state == "unavailable":
            for stream in self._streams.values():
                stream._pending = None
        for stream in list(self._streams.values()):
            stream._set_status(chosen.state, chosen.message)
        self._state_changed.set()

    def _new_worker(self, slot: _Slot) -> Worker:
        name = f"emotion-worker-{slot.index}"
        if self.mode == "thread":
            return ThreadWorker(self.detector, name=name)
        return ProcessWorker(self.detector, name=name)

    async def _stop_worker(self, slot: _Slot) -> None:
        if slot.worker is not None:
            # Forget the worker only once it is gone: aclose() must find one stopped half-way.
            await slot.worker.stop()
            slot.worker = None

    async def _run_slot(self, slot: _Slot) -> None:
        """Keep one worker alive and feed it streams' pending frames, one at a time."""
        failures = 0
        while not self._closed:
            if slot.worker is None:
                if failures:
                    base, cap = self.restart_backoff
                    delay = min(cap, base * 2 ** (failures - 1))
                    self._set_slot(slot, "degraded", f"{slot.message}; restarting the emotion worker in {delay:g} s")
                    await asyncio.sleep(delay)
                slot.worker = self._new_worker(slot)
                if failures:
                    self.restarts += 1
                try:
                    await slot.worker.start(self.start_timeout)
                except WorkerUnavailable as exc:
                    await self._stop_worker(slot)
                    self._set_slot(slot, "unavailable", str(exc))
                    return
                except WorkerError as exc:
                    failures += 1
                    await self._stop_worker(slot)
                    slot.message = f"emotion worker failed to start: {exc}"
                    continue
                self._set_slot(slot, "ok", "emotion analysis running")

            stream = await self._next_stream()
            if stream is None:
                return
            pending = stream._take()
            try:
                if pending is None:
                    continue
                loop = asyncio.get_running_loop()
                handed_over = loop.time()
                try:
                    faces, _ = await slot.worker.analyse(
                        stream._id, pending.frame, self.max_frame_side, self.analysis_timeout
                    )
                except InvalidFrame as exc:
                    stream.frames_rejected += 1
                    stream._warn_invalid(exc)
                except DetectorFailed as exc:
                    stream._on_detector_error(str(exc))
                except WorkerError as exc:
                    failures += 1
                    log.warning("emotion worker %s failed: %s", slot.worker.pid, exc)
                    slot.message = f"emotion worker failed: {exc}"
                    await self._stop_worker(slot)
                except Exception as exc:  # anything unforeseen costs one frame, never the slot
                    log.exception("emotion analysis of a frame of %s failed", stream.key)
                    stream._on_detector_error(describe(exc))
                else:
                    failures = 0
                    try:
                        size = analysed_size(pending.frame, self.max_frame_side)
                        stream._on_result(pending.media_time, faces, loop.time() - handed_over, size)
                    except Exception as exc:
                        log.exception("emotion aggregation for %s failed", stream.key)
                        stream._on_detector_error(describe(exc))
            finally:
                stream._in_flight = False
                if stream._pending is not None and not stream._closed:
                    self._offer(stream)
