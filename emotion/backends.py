"""Where analyses run, seen from the event loop: a worker process, or a worker thread.

Both give the same small async interface (:class:`Worker`); the service above
them handles scheduling, deadlines and restarts.

``ProcessWorker`` (production): a fresh interpreter running ``python -m
emotion.worker``, so the model's interpreter never loads into the server, a
crash or hang in native code cannot take a call down, and a stuck worker can be
killed. It is started with ``subprocess`` rather than ``multiprocessing``'s
spawn, which would first re-run the server's main script in the worker (the
``rapport`` console script imports the whole server: seconds and ~30 MB before
the model loads); the worker imports only itself and its detector. All
blocking pipe I/O and the frame conversion run on one helper thread per worker,
so the event loop never waits on the pipe.

A frame crosses as the detector wants it (the worker says which when ready):
the default fast path reads grey, so a yuv420p frame's Y plane goes over as it
is, a third of the bytes of BGR, in one raw message (no pickling, no copy
before the socket).

``ThreadWorker`` (tests, development): a single thread in this process. Cheap
to start, but a hung detector cannot be killed (it is abandoned) and the
interpreter then lives in the server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np

from .detector import DetectorUnavailable, Pixels
from .frames import Frame, to_bgr, to_grey
from .types import FaceEmotion
from .worker import DetectorFactory, DetectorPool, describe, resolve_factory

log = logging.getLogger(__name__)


def prepare(frame: Frame, max_side: int, pixels: Pixels) -> np.ndarray:
    """What the detector is given for ``frame``: grey or BGR, downscaled. Raises InvalidFrame."""
    return to_grey(frame, max_side) if pixels == "grey" else to_bgr(frame, max_side)


class WorkerError(Exception):
    """The worker died, hung or could not start; a restart may help."""


class WorkerUnavailable(WorkerError):
    """The worker cannot run here at all (missing dependency); restarting will not help."""


class DetectorFailed(Exception):
    """The detector raised on one frame; the worker itself is fine."""


class Worker(Protocol):
    @property
    def pid(self) -> int | None: ...

    async def start(self, timeout: float) -> None:
        """Start and wait until the detector is loaded. Raises WorkerUnavailable / WorkerError."""

    async def analyse(
        self, stream_id: int, frame: Frame, max_side: int, timeout: float
    ) -> tuple[list[FaceEmotion], float]:
        """Faces in ``frame`` and the detector's own seconds. Raises InvalidFrame, DetectorFailed, WorkerError."""

    def forget(self, stream_id: int) -> None:
        """Drop the stream's detector state (fire and forget)."""

    async def stop(self) -> None:
        """Stop for good, killing if need be. Idempotent."""


class ProcessWorker:
    """One spawned worker process and the pipe to it."""

    def __init__(self, factory: DetectorFactory, *, name: str = "emotion-worker") -> None:
        self._factory = factory
        self._name = name
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        # One thread does all blocking work for this worker, in order: spawn, send, recv, join.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._requests = itertools.count(1)
        self._in_request = False  # set by the helper thread while a request is out
        self._stopped = False
        self._stopping: asyncio.Future[None] | None = None
        #: What the worker's detector wants ("bgr" until the worker says).
        self.pixels: Pixels = "bgr"
        #: Pixel bytes sent to the worker so far (for the benchmark).
        self.bytes_sent = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def _run(self, fn: Any, *args: Any, timeout: float | None = None) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._io, fn, *args)
        return await asyncio.wait_for(future, timeout)

    def _spawn(self) -> None:
        if self._stopped:
            return
        parent_end, child_end = socket.socketpair()
        # The worker finds the modules this process finds (a factory may live in tests/ or bench/).
        path = os.pathsep.join(os.path.abspath(p) for p in sys.path)  # "" is the working directory
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "emotion.worker", str(child_end.fileno()), self._name],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )
        finally:
            # Only the child may hold its end: then a dead child reads as EOF here, at once.
            child_end.close()
        conn = Connection(parent_end.detach())
        self._process, self._conn = process, conn
        conn.send(self._factory)  # the first message: what to build (pickled, like every message)

    def _await_ready(self, timeout: float) -> tuple[Any, ...]:
        conn = self._conn
        if conn is None:
            raise WorkerError("worker was stopped before it started")
        deadline = time.monotonic() + timeout
        try:
            # Short polls, so stop() never waits for a slow model load to finish.
            while not conn.poll(0.1):
                if self._stopped:
                    raise WorkerError("worker was stopped while starting")
                if time.monotonic() > deadline:
                    raise TimeoutError
            return conn.recv()
        except (EOFError, OSError) as exc:
            raise WorkerError(f"worker exited while starting ({self._exit_text()})") from exc

    async def start(self, timeout: float) -> None:
        if self._stopped:
            raise WorkerError("worker was stopped")
        started = time.monotonic()
        try:
            await self._run(self._spawn, timeout=timeout)
            remaining = max(0.1, timeout - (time.monotonic() - started))
            reply = await self._run(self._await_ready, remaining, timeout=remaining + 5)
        except TimeoutError as exc:
            raise WorkerError(f"worker did not load its detector within {timeout:.0f} s") from exc
        if reply[0] == "ready":
            self.pixels = "grey" if reply[2:3] == ("grey",) else "bgr"
            log.info("emotion worker %s ready in %.1f s", self.pid, time.monotonic() - started)
            return
        if reply[0] == "unavailable":
            raise WorkerUnavailable(str(reply[1]))
        raise WorkerError(f"worker failed to start: {reply[1]}")

    def _exit_text(self) -> str:
        process = self._process
        if process is None:
            return "not started"
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
        return f"exit code {process.returncode}"

    def _roundtrip(self, request_id: int, stream_id: int, frame: Frame, max_side: int) -> tuple[Any, ...]:
        conn = self._conn
        if conn is None or self._stopped:
            raise WorkerError("worker is not running")
        image = prepare(frame, max_side, self.pixels)  # InvalidFrame goes straight to the caller
        if not image.flags.c_contiguous:
            image = np.ascontiguousarray(image)  # a padded plane: one copy, rows only
        self._in_request = True
        try:
            conn.send(("detect", request_id, stream_id, image.shape))
            conn.send_bytes(image.reshape(-1).data)  # straight from the frame's memory into the socket
            self.bytes_sent += image.nbytes
            while True:
                reply = conn.recv()
                if reply[1] == request_id:
                    return reply
        except (EOFError, OSError) as exc:
            raise WorkerError(f"worker died ({self._exit_text()})") from exc
        finally:
            self._in_request = False

    async def analyse(
        self, stream_id: int, frame: Frame, max_side: int, timeout: float
    ) -> tuple[list[FaceEmotion], float]:
        request_id = next(self._requests)
        try:
            reply = await self._run(self._roundtrip, request_id, stream_id, frame, max_side, timeout=timeout)
        except TimeoutError as exc:
            raise WorkerError(f"analysis took longer than {timeout:g} s") from exc
        if reply[0] == "error":
            raise DetectorFailed(reply[2])
        return reply[2], float(reply[3])

    def _send_quietly(self, message: tuple[Any, ...]) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(message)

    def forget(self, stream_id: int) -> None:
        if self._conn is not None and not self._stopped:
            # Queued behind any analysis in flight, so the pipe is never written by two threads.
            self._io.submit(self._send_quietly, ("forget", stream_id))

    def _shutdown(self, graceful: bool) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        if graceful and process.poll() is None:
            self._send_quietly(("stop",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2.0)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5.0)
        if conn is not None:
            conn.close()

    async def stop(self) -> None:
        # Shielded and shared: a caller cancelled mid-stop leaves the stop running, and a
        # second caller (aclose after a cancelled restart) waits for the same one.
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self._stopped = True  # seen by the helper thread: a pending spawn, model wait or request gives up
        busy = self._in_request
        process = self._process
        if process is not None and busy:
            # Mid-analysis (maybe hung): kill now, so the helper thread's recv returns at once.
            with contextlib.suppress(OSError):
                process.kill()
        loop = asyncio.get_running_loop()
        try:
            # On the helper thread, after whatever it is doing (spawn, model wait, request) is over.
            await asyncio.wait_for(loop.run_in_executor(self._io, self._shutdown, not busy), 15.0)
        except Exception:
            log.exception("emotion worker %s did not stop cleanly", self.pid)
            if self._process is not None:
                with contextlib.suppress(OSError):
                    self._process.kill()
        finally:
            self._io.shutdown(wait=False, cancel_futures=True)


class ThreadWorker:
    """Runs the detectors on one thread of this process (same interface as ProcessWorker)."""

    def __init__(self, factory: DetectorFactory, *, name: str = "emotion-thread") -> None:
        self._factory = factory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pool: DetectorPool | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return None

    async def start(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._pool = await asyncio.wait_for(
                loop.run_in_executor(self._executor, DetectorPool, resolve_factory(self._factory)), timeout
            )
        except DetectorUnavailable as exc:
            raise WorkerUnavailable(str(exc)) from exc
        except TimeoutError as exc:
            raise WorkerError(f"detector did not load within {timeout:.0f} s") from exc
        except Exception as exc:
            raise WorkerError(f"detector failed to start: {describe(exc)}") from exc

    def _analyse(self, stream_id: int, frame: Frame, max_side: int) -> tuple[list[FaceEmotion], float]:
        assert self._pool is not None
        image = prepare(frame, max_side, self._pool.pixels)
        started = time.perf_counter()
        try:
            faces = self._pool.detect(stream_id, image)
        except Exception as exc:
            raise DetectorFailed(describe(exc)) from exc
        return faces, time.perf_counter() - started

    async def analyse(
        self, stream_id: int, frame: Frame, max_side: int, timeout: float
    ) -> tuple[list[FaceEmotion], float]:
        if self._pool is None or self._stopped:
            raise WorkerError("worker is not running")
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._analyse, stream_id, frame, max_side), timeout
            )
        except TimeoutError as exc:
            raise WorkerError(f"analysis took longer than {timeout:g} s") from exc

    def forget(self, stream_id: int) -> None:
        pool = self._pool
        if pool is not None and not self._stopped:
            self._executor.submit(pool.forget, stream_id)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        # A hung detector cannot be interrupted in a thread: abandon it rather than wait.
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pool = None
