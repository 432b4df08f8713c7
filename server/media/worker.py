"""A media worker process: the WebRTC peers, forwarding and recording of the calls it is given.

The front door (one process: HTTP, WebSockets, queue, database of record)
spreads calls over one worker per core (``server/media/pool.py``). It talks to
each worker over the worker's stdin/stdout with :mod:`server.media.wire` messages:

* ``open`` / ``close`` a call, ``answer`` an offer for a role, ``drop`` a role;
* ``record`` / ``record_stop``: the worker writes the call's recordings itself
  (it opens the same database for the rows);
* ``frames_on`` / ``frames_off``: send the customer's decoded video, newest
  frame only and at most ``fps`` a second, for the emotion cues in the front door.

Events go back the same way: ``media_state``, ``recording_truncated``,
``frame`` (raw yuv420p in the body) and ``stats`` once a second. A worker that
dies takes only its own calls down; the front door ends them cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

import av

from ..config import parse_ice_servers
from ..metrics import BucketCounts
from ..recording.recorder import CallRecording
from ..storage.files import restrict_new_files
from ..storage.schema import create_engine
from ..storage.store import Store
from . import wire
from .call import CallMedia, MediaClosed
from .feeds import DecodingSink, Media
from .peers import BadOffer

log = logging.getLogger("server.media.worker")


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


class WorkerHost:
    def __init__(self, writer: asyncio.WriteTransport, db_url: str) -> None:
        self._writer = writer
        self._db_url = db_url
        self._store: Store | None = None
        self.calls: dict[str, CallMedia] = {}
        self.recordings: dict[str, CallRecording] = {}
        self.samplers: dict[str, tuple[DecodingSink, FrameSampler]] = {}
        self.transit = BucketCounts()
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self._writer.write(wire.encode(header, body))

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(create_engine(self._db_url))
        return self._store

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
            elif op == "drop":
                await self.calls[session].drop(str(header["role"]))
            elif op == "record":
                recording = CallRecording(self.store, Path(header["root"]), session)
                await recording.start(self.calls[session].feeds)
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
            elif op == "close":
                await self._close(session)
            else:
                raise ValueError(f"unknown op {op!r}")
        except BadOffer as exc:
            reply["error"], reply["message"] = "bad_sdp", str(exc)
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

    async def _watch_recording(self, session: str, recording: CallRecording) -> None:
        while self.recordings.get(session) is recording:
            await asyncio.sleep(1.0)
            await recording.save_epochs()
            if recording.truncated:
                self.send({"event": "recording_truncated", "session": session, "error": recording.error})
                return

    async def _close(self, session: str) -> None:
        self._frames_off(session)
        recording = self.recordings.pop(session, None)
        if recording is not None:
            await recording.stop()
        media = self.calls.pop(session, None)
        if media is not None:
            await media.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def report(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            stats = {session: media.stats() for session, media in self.calls.items()}
            self.send({"event": "stats", "calls": stats, "transit": self.transit.take()})

    async def aclose(self) -> None:
        for session in list(self.calls):
            with contextlib.suppress(Exception):
                await self._close(session)
        if self._store is not None:
            await self._store.engine.dispose()


async def serve(db_url: str) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=wire.MAX_BODY)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    host = WorkerHost(transport, db_url)
    reporter = asyncio.create_task(host.report())
    handlers: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                header, _body = await wire.read(reader)
            except asyncio.IncompleteReadError:
                return  # the front door went away: so do we
            # Offers take a while: answer them concurrently, other calls must not wait.
            task = asyncio.create_task(host.handle(header))
            handlers.add(task)
            task.add_done_callback(handlers.discard)
    finally:
        reporter.cancel()
        await host.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description="Rapport media worker (started by the server)")
    parser.add_argument("--db-url", required=True)
    args = parser.parse_args()
    # Recordings written here are the owner's only (files 0600, folders 0700), whoever started the worker.
    restrict_new_files()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s worker: %(message)s")
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(serve(args.db_url))


if __name__ == "__main__":
    main()
