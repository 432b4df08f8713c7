"""The front door's side of the media workers: one process per core, calls spread over them.

:class:`RemoteCallMedia` stands in for :class:`server.media.call.CallMedia` in the
call centre, so the rest of the server does not care where a call's media
runs (a worker here, or a media node: ``server.media.nodes``). A worker that dies fails its calls'
pending requests at once and tells the call centre, which ends exactly those calls; a new worker takes
its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiohttp import web

from emotion import EmotionEvent, EmotionStatus, EmotionUpdate

from ..config import IceServer, Settings
from ..metrics import BucketCounts
from . import wire
from .call import BaseCallMedia, MediaClosed, MediaStateCallback
from .feeds import FrameSink
from .ice import ANY_PORT, IcePolicy, PortsExhausted, ports_capacity
from .link import MediaLink, MediaLost, MediaPool, WorkerGone
from .peers import BadOffer

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CUE_FPS = 5.0


# glibc gives each thread that allocates an arena of its own, up to 8 per core, and keeps each one's pages: a worker's
# calls come and go on short-lived threads (aiortc's codec threads, the executor), so its resident memory crept up
# by an arena at a time (about 1.5 MB each, bench/soak.py). Two arenas serve a worker's few threads as well.
WORKER_MALLOC_ARENAS = "2"


def worker_environment() -> dict[str, str]:
    """This process's environment, with glibc's arena limit for the worker unless the operator set one."""
    env = dict(os.environ)
    env.setdefault("MALLOC_ARENA_MAX", WORKER_MALLOC_ARENAS)
    return env


class MediaWorker(MediaLink):
    """One worker process and its message pipe."""

    def __init__(self, index: int, db_url: str, transit: BucketCounts, ice_policy: IcePolicy = ANY_PORT) -> None:
        super().__init__(f"worker {index}", transit)
        self.index = index
        self.db_url = db_url
        self.ice_policy = ice_policy
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self.on_exit: Callable[[MediaWorker], Awaitable[None]] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.media.worker",
            "--db-url",
            self.db_url,
            *self.ice_policy.args(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            limit=wire.MAX_BODY,
            env=worker_environment(),
        )
        self.alive = True
        self._reader = asyncio.create_task(self._read(), name=f"media-worker-{self.index}")
        log.info("media worker %d started (pid %d)", self.index, self.process.pid)

    def _write(self, data: bytes) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.write(data)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        try:
            await self._read_events(self.process.stdout)
        except ValueError:
            log.error("media worker %d sent garbage: stopping it", self.index)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        finally:
            self._fail_pending()
            code = await self.process.wait()
            log.warning("media worker %d (pid %s) exited with %s", self.index, self.pid, code)
            if self.on_exit is not None:
                await self.on_exit(self)

    async def stop(self) -> None:
        self.on_exit = None
        if self.process is not None and self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class RemoteFeed:
    """The customer's video as decoded frames from the worker, for the emotion cues (frame sinks)."""

    def __init__(self, media: RemoteCallMedia, kind: str) -> None:
        self.kind = kind
        self._media = media
        self._sinks: list[FrameSink] = []

    def subscribe(self, sink: FrameSink) -> None:
        self._sinks.append(sink)
        if len(self._sinks) == 1:
            self._media.worker.send("frames_on", session=self._media.session_id, fps=CUE_FPS)

    def unsubscribe(self, sink: FrameSink) -> None:
        with contextlib.suppress(ValueError):
            self._sinks.remove(sink)
        if not self._sinks:
            self._media.worker.send("frames_off", session=self._media.session_id)

    def deliver(self, header: dict[str, Any], body: bytes) -> None:
        width, height = int(header["width"]), int(header["height"])
        strides = header["strides"]
        frame = av.VideoFrame(width, height, "yuv420p")
        offset = 0
        for index, (plane, stride) in enumerate(zip(frame.planes, strides, strict=True)):
            size = stride * (height if index == 0 else (height + 1) // 2)
            data = np.frombuffer(body, np.uint8, size, offset)
            offset += size
            if plane.line_size == stride:
                plane.update(data.tobytes())
            else:
                rows = data.reshape(-1, stride)[:, : plane.line_size]
                plane.update(np.ascontiguousarray(rows).tobytes())
        frame.pts = header["pts"]
        frame.time_base = Fraction(*header["tb"])
        for sink in list(self._sinks):
            sink.push(frame)


class RemoteRecording:
    """The call's recordings, written by the worker.

    The same face as :class:`server.recording.recorder.CallRecording`.
    """

    def __init__(self, media: RemoteCallMedia) -> None:
        self._media = media
        self.truncated = False
        self.error: str | None = None

    async def save_epochs(self) -> None:
        return None  # the worker stores them

    async def stop(self) -> list[Any]:
        with contextlib.suppress(WorkerGone, TimeoutError):
            await self._media.worker.request("record_stop", session=self._media.session_id)
        return []


STATUSES = ("starting", "ok", "degraded", "unavailable")


def reading_from(fields: dict[str, Any]) -> EmotionUpdate:
    """An ``EmotionUpdate`` back from its ``to_dict()`` (as a media node sends it); ValueError if malformed."""
    flag = fields.get("flag")
    if flag not in (None, "raised", "cleared"):
        raise ValueError(f"bad flag {flag!r}")
    frustration = fields.get("frustration")
    dominant = fields.get("dominant")
    return EmotionUpdate(
        media_time=float(fields["media_time"]),
        face_present=bool(fields["face_present"]),
        frustration=None if frustration is None else float(frustration),
        smoothed=float(fields["smoothed"]),
        dominant=None if dominant is None else str(dominant),
        scores={str(k): float(v) for k, v in dict(fields.get("scores") or {}).items()},
        flag=flag,
        flag_active=bool(fields.get("flag_active")),
        flag_seconds=float(fields.get("flag_seconds") or 0.0),
    )


class CueReadings:
    """The emotion events a media node made of a call's customer video, as an async iterator (ends on ``end``)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[EmotionEvent | None] = asyncio.Queue()

    def put(self, event: EmotionEvent) -> None:
        self._queue.put_nowait(event)

    def end(self) -> None:
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[EmotionEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[EmotionEvent]:
        while (event := await self._queue.get()) is not None:
            yield event


class RemoteCallMedia(BaseCallMedia):
    """A call's media in a worker process or on a media node; the interface the call centre uses of CallMedia.

    ``cues_on_link``: the other end runs the emotion analysis itself and sends readings (a media node);
    otherwise it sends the customer's decoded frames for the analysis here (a local worker).
    """

    def __init__(
        self,
        worker: MediaLink,
        session_id: str,
        *,
        on_media_state: MediaStateCallback,
        forward: bool,
        cues_on_link: bool = False,
    ) -> None:
        super().__init__(session_id, on_media_state=on_media_state, forward=forward)
        self.worker = worker
        self.cues_on_link = cues_on_link
        self.feeds: dict[str, dict[str, Any]] = {"customer": {"video": RemoteFeed(self, "video")}}
        self.recording: RemoteRecording | None = None
        self.last_stats: dict[str, dict[str, int]] = {}
        self._readings: CueReadings | None = None

    async def answer(self, role: str, offer_sdp: str) -> str:
        self._negotiating.add(role)
        try:
            reply = await self.worker.request("answer", session=self.session_id, role=role, sdp=offer_sdp)
        except (WorkerGone, TimeoutError):
            raise MediaClosed from None
        finally:
            self._negotiating.discard(role)
        if reply.get("error") == "bad_sdp":
            raise BadOffer(str(reply.get("message")))
        if reply.get("error") == "no_ports":
            raise PortsExhausted(errno.EADDRINUSE, str(reply.get("message")))
        if reply.get("error") or not isinstance(reply.get("sdp"), str):
            raise MediaClosed
        return str(reply["sdp"])

    async def set_assist(self, mode: str | None) -> None:
        """A supervisor listens, whispers, barges in or left: the gates on the other end follow."""
        try:
            reply = await self.worker.request("assist", session=self.session_id, mode=mode)
        except (WorkerGone, TimeoutError):
            raise MediaClosed from None
        if reply.get("error"):
            raise MediaClosed

    async def drop(self, role: str) -> None:
        with contextlib.suppress(WorkerGone, TimeoutError):
            await self.worker.request("drop", session=self.session_id, role=role)
        self._media_state[role] = "new"

    def report_lost(self, role: str) -> None:
        """``role``'s media is gone until they offer again (their media moved to another node)."""
        self._report_media_state(role, "lost")

    async def start_recording(self, root: Path) -> RemoteRecording:
        reply = await self.worker.request("record", session=self.session_id, root=str(root))
        if reply.get("error"):
            raise RuntimeError(reply.get("message"))
        self.recording = RemoteRecording(self)
        return self.recording

    def start_cues(self, settings: dict[str, float]) -> CueReadings:
        """The other end analyses the customer's video (never the rep's) and sends readings, never frames."""
        self.stop_cues()
        self._readings = CueReadings()
        self.worker.send("cues_on", session=self.session_id, **settings)
        return self._readings

    def stop_cues(self) -> None:
        if self._readings is not None:
            self.worker.send("cues_off", session=self.session_id)
            self._readings.end()
            self._readings = None

    def on_event(self, header: dict[str, Any], body: bytes) -> None:
        event = header.get("event")
        if event == "media_state":
            self._report_media_state(str(header["role"]), str(header["state"]))
        elif event == "frame":
            self.feeds["customer"]["video"].deliver(header, body)
        elif event == "emotion" and self._readings is not None:
            self._readings.put(reading_from(dict(header["reading"])))
        elif event == "emotion_status" and self._readings is not None:
            status = header.get("status")
            if status not in STATUSES:
                raise ValueError(f"bad emotion status {status!r}")
            self._readings.put(EmotionStatus(status, str(header.get("message", ""))))
        elif event == "recording_truncated" and self.recording is not None:
            self.recording.truncated, self.recording.error = True, header.get("error")

    def stats(self) -> dict[str, dict[str, int]]:
        return self.last_stats or {"customer": {}, "rep": {}}

    def abandon(self) -> None:
        """Its link is gone: nothing to close at the other end, and nothing more will arrive."""
        self._closed = True
        self.worker.calls.pop(self.session_id, None)
        if self._readings is not None:
            self._readings.end()
            self._readings = None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker.forget(self.session_id)
        self.stop_cues()
        with contextlib.suppress(WorkerGone, TimeoutError):
            await self.worker.request("close", session=self.session_id)


class MediaWorkerPool:
    """``count`` workers; each new call goes to the one carrying the fewest."""

    def __init__(self, count: int, db_url: str, transit: BucketCounts, ice_policy: IcePolicy = ANY_PORT) -> None:
        self.count = count
        self.db_url = db_url
        self.transit = transit
        self.ice_policy = ice_policy
        self.workers: list[MediaWorker] = []
        self.on_lost: MediaLost | None = None
        # A dead worker's calls end (the front door restarts the worker; re-offering would race it).
        self.replaces_lost_calls = False
        self._closing = False

    async def start(self) -> None:
        for index in range(self.count):
            await self._spawn(index)

    async def _spawn(self, index: int) -> MediaWorker:
        worker = MediaWorker(index, self.db_url, self.transit, self.ice_policy)
        worker.on_exit = self._worker_exited
        await worker.start()
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        return worker

    async def _worker_exited(self, worker: MediaWorker) -> None:
        lost = list(worker.calls)
        worker.calls.clear()
        if self._closing:
            return
        if self.on_lost is not None and lost:
            await self.on_lost(lost)
        await self._spawn(worker.index)

    async def open(
        self,
        session_id: str,
        ice_servers: tuple[IceServer, ...],
        *,
        on_media_state: MediaStateCallback,
        stall_after_s: float,
        forward: bool,
    ) -> RemoteCallMedia:
        live = [w for w in self.workers if w.alive]
        if not live:
            raise MediaClosed
        worker = min(live, key=lambda w: len(w.calls))
        media = RemoteCallMedia(worker, session_id, on_media_state=on_media_state, forward=forward)
        worker.calls[session_id] = media
        servers = [s.to_browser() for s in ice_servers]
        await worker.request(
            "open", session=session_id, ice_servers=servers, stall_after_s=stall_after_s, forward=forward
        )
        return media

    def worker_of(self, session_id: str) -> MediaWorker | None:
        return next((w for w in self.workers if session_id in w.calls), None)

    def capacity(self) -> int | None:
        return None  # the box's own capacity model (server.calls.capacity)

    def task_counts(self) -> dict[str, int]:
        """Each live worker's asyncio tasks, as of its last stats report (the rapport_asyncio_tasks gauge)."""
        return {f"worker {w.index}": w.tasks for w in self.workers if w.alive and w.tasks is not None}

    async def aclose(self) -> None:
        self._closing = True
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)


# Set only when the server runs media workers (media_workers > 0) or uses media nodes (media_nodes);
# calls stay in the front door otherwise.
MEDIA_POOL = web.AppKey("media_pool", MediaPool)


def default_workers() -> int:
    return os.cpu_count() or 1


# Calls one core carries at 30 fps, measured with bench/calls/ (README): the default capacity model.
CALLS_PER_CORE = {"forward": 3, "transcode": 1}


def default_capacity(settings: Settings) -> int:
    """Calls this box carries: ``max_calls`` when set, else the model (calls per core x cores); never more than
    ``rtc_ports`` has room for."""
    calls = (
        settings.max_calls
        if settings.max_calls > 0
        else int(CALLS_PER_CORE[settings.media_path] * (os.cpu_count() or 1))
    )
    return max(1, min(calls, ports_capacity(settings.rtc_ports)))
