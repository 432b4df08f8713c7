"""The analysis side: what runs inside the worker process (or the worker thread).

The worker owns the detectors: one per stream (a detector may track a face
between a stream's frames), built by the given factory. It answers one request
at a time, which is also what the model's interpreter (not reentrant) requires.

The process is ``python -m emotion.worker FD NAME`` (see :class:`emotion.backends.ProcessWorker`);
FD is its end of a socket pair, wrapped as a ``multiprocessing.connection.Connection``.
Wire protocol over it (pickled objects):

parent -> worker: first the detector factory, then ``("detect", request_id, stream_id, bgr)``,
``("forget", stream_id)``, ``("stop",)``
worker -> parent: ``("ready", pid)`` once the first detector (and the model) loaded,
``("unavailable", message)`` / ``("failed", message)`` if it could not,
``("result", request_id, faces, seconds)`` or ``("error", request_id, message, seconds)`` per request.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeAlias

import numpy as np

from .detector import Detector, DetectorUnavailable
from .types import FaceEmotion

log = logging.getLogger(__name__)

#: How to build a detector inside the worker: a picklable zero-argument callable
#: (a class, a module-level function, a ``functools.partial`` of one) or an import
#: path ``"package.module:attribute"`` resolved in the worker.
DetectorFactory: TypeAlias = Callable[[], Detector] | str

DEFAULT_DETECTOR = "emotion.fastpath:FastFerDetector"
# Detectors are per stream; an LRU bound keeps a leak (streams never forgotten) harmless.
MAX_DETECTORS = 256


def resolve_factory(factory: DetectorFactory) -> Callable[[], Detector]:
    """The callable behind ``factory`` (imports the module of an import path)."""
    if not isinstance(factory, str):
        if not callable(factory):
            raise TypeError(f"detector factory must be callable or 'module:attribute', got {factory!r}")
        return factory
    module_name, sep, attribute = factory.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"detector factory path must look like 'package.module:attribute', got {factory!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{factory!r} is not callable")
    return target


def coerce_faces(result: object) -> list[FaceEmotion]:
    """Check a detector's answer (it may be third-party code) before it leaves the worker."""
    if not isinstance(result, list) or not all(isinstance(face, FaceEmotion) for face in result):
        raise TypeError(f"detector must return list[FaceEmotion], got {type(result).__name__}")
    return result


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DetectorPool:
    """One detector per stream, built on demand; the first one is built eagerly to load the model."""

    def __init__(self, factory: Callable[[], Detector]) -> None:
        self._factory = factory
        self._spare: Detector | None = factory()
        self._detectors: OrderedDict[int, Detector] = OrderedDict()

    def detect(self, stream_id: int, bgr: np.ndarray) -> list[FaceEmotion]:
        detector = self._detectors.get(stream_id)
        if detector is None:
            detector, self._spare = (self._spare, None) if self._spare is not None else (self._factory(), None)
            self._detectors[stream_id] = detector
            while len(self._detectors) > MAX_DETECTORS:
                self._detectors.popitem(last=False)
        else:
            self._detectors.move_to_end(stream_id)
        return coerce_faces(detector.detect(bgr))

    def forget(self, stream_id: int) -> None:
        self._detectors.pop(stream_id, None)


def _settle_process() -> None:
    # Ctrl-C reaches the whole process group; the parent decides when the worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import cv2

        # One inference at a time anyway: OpenCV's thread pool would only add overhead and CPU.
        cv2.setNumThreads(1)
    except ImportError:
        pass
    logging.basicConfig(level=logging.WARNING, format="emotion-worker %(process)d %(levelname)s %(name)s: %(message)s")


def serve(fd: int) -> None:
    """Entry point of the worker process: read the factory from the socket ``fd``, then serve requests on it."""
    conn = Connection(fd)
    try:
        factory = conn.recv()
    except (EOFError, OSError):
        return  # the parent went away before saying what to run
    worker_main(conn, factory)


def worker_main(conn: Connection, factory: DetectorFactory) -> None:
    """Build the detectors, say ready, then answer requests until told to stop or the parent is gone."""
    _settle_process()
    try:
        pool = DetectorPool(resolve_factory(factory))
    except DetectorUnavailable as exc:
        conn.send(("unavailable", str(exc)))
        return
    except BaseException as exc:
        conn.send(("failed", describe(exc)))
        raise SystemExit(1) from exc
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone: nothing left to serve
        kind = message[0]
        if kind == "stop":
            # Nothing to save; skipping interpreter teardown frees the CPU sooner.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        if kind == "forget":
            pool.forget(message[1])
            continue
        if kind != "detect":
            log.warning("ignoring unknown message %r", kind)
            continue
        _, request_id, stream_id, bgr = message
        started = time.perf_counter()
        try:
            faces = pool.detect(stream_id, bgr)
        except Exception as exc:
            conn.send(("error", request_id, describe(exc), time.perf_counter() - started))
        else:
            conn.send(("result", request_id, faces, time.perf_counter() - started))


if __name__ == "__main__":
    # Through the package's own module, not this __main__ copy: results pickle as emotion.* types.
    from emotion.worker import serve as _serve

    _serve(int(sys.argv[1]))
