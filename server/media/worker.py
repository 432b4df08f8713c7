"""A media worker process: the WebRTC peers, forwarding and recording of the calls it is given.

The front door (one process: HTTP, WebSockets, queue, database of record)
spreads calls over one worker per core (``server/media/pool.py``). It talks to
each worker over the worker's stdin/stdout with :mod:`server.media.wire` messages:

* ``open`` / ``close`` a call, ``answer`` an offer for a role, ``drop`` a role;
* ``record`` / ``record_stop``: the worker writes the call's recordings itself
  (it opens the same database for the rows);
* ``frames_on`` / ``frames_off``: send the customer's decoded video, newest
  frame only and at most ``fps`` a second, for the emotion cues in the front door;
* ``cues_on`` / ``cues_off`` (a host with its own emotion service, i.e. a media node): analyse the
  customer's video here and send readings only (``server.media.analysis``).

Events go back the same way: ``media_state``, ``recording_truncated``,
``frame`` (raw yuv420p in the body), ``emotion`` / ``emotion_status`` and ``stats`` once a second. A worker
that dies takes only its own calls down; the front door ends them cleanly.

:class:`WorkerHost` and :func:`serve_link` work over any asyncio stream pair: a worker's stdin/stdout here,
a media node's TCP links in ``server.media.node``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import av

from emotion import EmotionService

from ..config import parse_ice_servers, parse_port_range, parse_public_ip
from ..metrics import BucketCounts
from ..recording.recorder import CallRecording
from ..storage.files import restrict_new_files
from ..storage.schema import create_engine
from ..storage.store import Store
from . import ice, wire
from .analysis import CueAnalysis, emotion_settings
from .call import CallMedia, MediaClosed
from .feeds import DecodingSink, Media
from .peers import BadOffer

log = logging.getLogger("server.media.worker")

# After a call's media closes: long enough for its transports' last tasks to end, short enough to batch closes.
COLLECT_AFTER_CLOSE_S = 1.0


class FrameSampler:
    """Newest decoded customer frame, at most ``fps`` a second, to the front door."""

    def __init__(self, host: WorkerHost, session_id: str, fps: float) -> None:
        self.host, self.session_id = host, session_id
        self.interval = 1.0 / max(fps, 0.5)
        self._last = 0.0

    def push(self, frame: Media) -> None:
        if not isinstance(frame, av.VideoFrame):
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        yuv = frame.reformat(format="yuv420p")
        body = b"".join(bytes(plane) for plane in yuv.planes)
        tb = frame.time_base
        self.host.send(
            {
                "event": "frame",
                "session": self.session_id,
                "width": yuv.width,
                "height": yuv.height,
                "pts": frame.pts,
                "tb": [tb.numerator, tb.denominator] if tb else [1, 90_000],
                "strides": [p.line_size for p in yuv.planes],
            },
            body,
        )


class Writer(Protocol):
    """Where a host's messages go: an ``asyncio.StreamWriter`` or a pipe's write transport."""

    def write(self, data: bytes) -> None: ...


class LazyStore:
    """The database, opened on first use (a host that never records never connects)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._store: Store | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = Store(create_engine(self.db_url))
        return self._store

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.engine.dispose()
            self._store = None


class WorkerHost:
    """The calls given over one link, and the ops on them.

    ``emotion``: this host analyses cues itself (a media node); ``emotion_message`` says why it cannot when None.
    """

    def __init__(
        self,
        writer: Writer,
        db_url: str | LazyStore,
        *,
        emotion: EmotionService | None = None,
        emotion_message: str = "emotion cues are turned off on this media node",
    ) -> None:
        self._writer = writer
        # A shared store (a node's links) is closed by its owner; our own one by us.
        self._owns_store = isinstance(db_url, str)
        self._store = LazyStore(db_url) if isinstance(db_url, str) else db_url
        self.emotion = emotion
        self.emotion_message = emotion_message
        self.calls: dict[str, CallMedia] = {}
        self.recordings: dict[str, CallRecording] = {}
        self.samplers: dict[str, tuple[DecodingSink, FrameSampler]] = {}
        self.analyses: dict[str, CueAnalysis] = {}
        self.transit = BucketCounts()
        self._tasks: set[asyncio.Task[None]] = set()
        self._collect: asyncio.TimerHandle | None = None

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self._writer.write(wire.encode(header, body))

    @property
    def store(self) -> Store:
        return self._store()

    async def handle(self, header: dict[str, Any]) -> None:
        op, session = header.get("op"), str(header.get("session", ""))
        reply: dict[str, Any] = {"event": "reply", "id": header.get("id")}
        try:
            if op == "open":
                self.calls[session] = CallMedia(
                    session,
                    parse_ice_servers(header.get("ice_servers") or []),
                    on_media_state=lambda role, state: self._media_state(session, role, state),
                    stall_after_s=float(header.get("stall_after_s", 6.0)),
                    forward=bool(header.get("forward")),
                    transit=self.transit,
                )
            elif op == "answer":
                reply["sdp"] = await self.calls[session].answer(str(header["role"]), str(header["sdp"]))
            elif op == "assist":
                mode = header.get("mode")
                await self.calls[session].set_assist(None if mode is None else str(mode))
            elif op == "drop":
                await self.calls[session].drop(str(header["role"]))
            elif op == "record":
                recording = CallRecording(self.store, Path(header["root"]), session)
                media = self.calls[session]
                await recording.start(media.feeds, assist_mode=lambda: media.assist_mode)
                self.recordings[session] = recording
                self._spawn(self._watch_recording(session, recording))
            elif op == "record_stop":
                finished = self.recordings.pop(session, None)
                if finished is not None:
                    await finished.stop()
            elif op == "frames_on":
                self._frames_on(session, float(header.get("fps", 5.0)))
            elif op == "frames_off":
                self._frames_off(session)
            elif op == "cues_on":
                await self._cues_on(session, header)
            elif op == "cues_off":
                await self._cues_off(session)
            elif op == "close":
                await self._close(session)
            else:
                raise ValueError(f"unknown op {op!r}")
        except BadOffer as exc:
            reply["error"], reply["message"] = "bad_sdp", str(exc)
        except ice.PortsExhausted as exc:
            reply["error"], reply["message"] = "no_ports", str(exc)
        except (MediaClosed, KeyError):
            reply["error"], reply["message"] = "closed", "the call's media is closed"
        except Exception as exc:
            log.exception("worker op %s failed", op)
            reply["error"], reply["message"] = "internal", f"{type(exc).__name__}: {exc}"
        if header.get("id") is not None:
            self.send(reply)

    async def _media_state(self, session: str, role: str, state: str) -> None:
        self.send({"event": "media_state", "session": session, "role": role, "state": state})

    def _frames_on(self, session: str, fps: float) -> None:
        if session in self.samplers:
            return
        feed = self.calls[session].feeds["customer"]["video"]
        sampler = FrameSampler(self, session, fps)
        decoder = DecodingSink(sampler, asyncio.get_running_loop())
        feed.subscribe(decoder)
        self.samplers[session] = (decoder, sampler)

    def _frames_off(self, session: str) -> None:
        pair = self.samplers.pop(session, None)
        media = self.calls.get(session)
        if pair is not None:
            if media is not None:
                media.feeds["customer"]["video"].unsubscribe(pair[0])
            pair[0].close()

    async def _cues_on(self, session: str, header: dict[str, Any]) -> None:
        await self._cues_off(session)
        media = self.calls[session]
        if self.emotion is None:
            unavailable = {"status": "unavailable", "message": self.emotion_message}
            self.send({"event": "emotion_status", "session": session, **unavailable})
            return
        self.analyses[session] = CueAnalysis(
            self.emotion,
            session,
            # The customer's video only: never the rep's.
            media.feeds["customer"]["video"],
            self.send,
            self._store,
            emotion_settings(header),
        )

    async def _cues_off(self, session: str) -> None:
        analysis = self.analyses.pop(session, None)
        if analysis is not None:
            await analysis.aclose()

    async def _watch_recording(self, session: str, recording: CallRecording) -> None:
        while self.recordings.get(session) is recording:
            await asyncio.sleep(1.0)
            await recording.save_epochs()
            if recording.truncated:
                self.send({"event": "recording_truncated", "session": session, "error": recording.error})
                return

    async def _close(self, session: str) -> None:
        self._frames_off(session)
        await self._cues_off(session)
        recording = self.recordings.pop(session, None)
        if recording is not None:
            await recording.stop()
        media = self.calls.pop(session, None)
        if media is not None:
            await media.aclose()
            self._collect_soon()

    def _collect_soon(self) -> None:
        """A full collection shortly after a call closes (one for the calls that close meanwhile).

        A call's aiortc peers are reference cycles (transports, receivers with their bitrate estimators' thousands
        of buckets, callbacks): only the cycle collector frees them, and left to its thresholds it ran once every
        15 to 30 calls, so a worker held that many dead calls and its heap fragmented (bench/soak.py). With
        start-up's objects frozen (``freeze_startup_objects``) a collection walks only the live calls' objects.
        """
        if self._collect is None:
            self._collect = asyncio.get_running_loop().call_later(COLLECT_AFTER_CLOSE_S, self._collect_now)

    def _collect_now(self) -> None:
        self._collect = None
        gc.collect()
        release_free_heap()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def report(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            stats = {session: media.stats() for session, media in self.calls.items()}
            tasks = len(asyncio.all_tasks())
            self.send({"event": "stats", "calls": stats, "transit": self.transit.take(), "tasks": tasks})

    async def aclose(self) -> None:
        for session in list(self.calls):
            with contextlib.suppress(Exception):
                await self._close(session)
        if self._collect is not None:
            self._collect.cancel()
            self._collect = None
        if self._owns_store:
            await self._store.aclose()


async def serve_link(reader: asyncio.StreamReader, host: WorkerHost) -> None:
    """Handle the front door's requests from ``reader`` until it goes away; then close every call of ``host``.

    ``ValueError`` when the front door's end sends garbage (the calls are closed all the same).
    """
    reporter = asyncio.create_task(host.report())
    handlers: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                header, _body = await wire.read(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the front door went away: so do its calls
            # Offers take a while: answer them concurrently, other calls must not wait.
            task = asyncio.create_task(host.handle(header))
            handlers.add(task)
            task.add_done_callback(handlers.discard)
    finally:
        reporter.cancel()
        for task in list(handlers):
            task.cancel()
        await host.aclose()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere).

    A call's peers and buffers are freed in the middle of the heap, below memory still in use, where ``free`` never
    returns them: the worker's resident memory grew with every few calls while the memory in use stayed flat
    (bench/soak.py --inspect). ``malloc_trim(0)`` releases free pages anywhere in every arena; it takes about a
    millisecond on a worker's heap, once per closed call (after the collection that frees the call).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def freeze_startup_objects() -> None:
    """Move what start-up made (modules, classes: about 100,000 objects) out of the collector's sight.

    Each call's peers leave reference cycles (aiortc's transports, receivers and their bitrate estimators) that only
    a full collection frees. Python runs one when the objects that survived into the oldest generation grow by a
    quarter of those already there; with start-up's objects counted, that took some 30 calls, so a worker's memory
    rose by tens of MB between collections (bench/soak.py) and each collection walked every start-up object.
    Frozen, they no longer count: the cycles go after a few calls, and a collection costs a fraction.
    """
    gc.collect()
    gc.freeze()


async def serve(db_url: str) -> None:
    freeze_startup_objects()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=wire.MAX_BODY)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    await serve_link(reader, WorkerHost(transport, db_url))


def main() -> None:
    parser = argparse.ArgumentParser(description="Rapport media worker (started by the server)")
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--rtc-ports", type=parse_port_range, default=None)
    parser.add_argument("--public-ip", type=parse_public_ip, default=None)
    args = parser.parse_args()
    ice.install(ice.IcePolicy(ports=args.rtc_ports, public_ip=args.public_ip))
    # Recordings written here are the owner's only (files 0600, folders 0700), whoever started the worker.
    restrict_new_files()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s worker: %(message)s")
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(serve(args.db_url))


if __name__ == "__main__":
    main()
