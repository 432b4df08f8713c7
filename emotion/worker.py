"""The analysis side: what runs inside the worker process (or the worker thread).

The worker owns the detectors: one per stream (a detector may track a face
between a stream's frames), built by the given factory. It answers one request
at a time, which is also what the model's interpreter (not reentrant) requires.

The process is ``python -m emotion.worker FD NAME`` (see :class:`emotion.backends.ProcessWorker`);
FD is its end of a socket pair, wrapped as a ``multiprocessing.connection.Connection``.
Wire protocol over it (pickled objects, and raw pixels):

parent -> worker: first the detector factory, then ``("detect", request_id, stream_id, shape)``
followed by one raw message of the frame's pixels (``Connection.send_bytes``: no pickling,
no copy on the way in; ``shape`` is (h, w) for grey, (h, w, 3) for BGR, uint8, C order),
``("forget", stream_id)``, ``("stop",)``
worker -> parent: ``("ready", pid, pixels)`` once the first detector (and the model) loaded,
``pixels`` being what that detector wants ("grey" or "bgr", see :func:`emotion.detector.pixels_of`),
``("unavailable", message)`` / ``("failed", message)`` if it could not,
``("result", request_id, faces, seconds)`` or ``("error", request_id, message, seconds)`` per request.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from multiprocessing import BufferTooShort
from multiprocessing.connection import Connection
from typing import Any, TypeAlias

import numpy as np

from .detector import Detector, DetectorUnavailable, Pixels, pixels_of
from .types import FaceEmotion

log = logging.getLogger(__name__)

#: How to build a detector inside the worker: a picklable zero-argument callable
#: (a class, a module-level function, a ``functools.partial`` of one) or an import
#: path ``"package.module:attribute"`` resolved in the worker.
DetectorFactory: TypeAlias = Callable[[], Detector] | str

DEFAULT_DETECTOR = "emotion.fastpath:FastFerDetector"
# Detectors are per stream; an LRU bound keeps a leak (streams never forgotten) harmless.
MAX_DETECTORS = 256
# A frame on the wire is at most this big (the parent downscales to 640 px; 4K BGR is far beyond).
MAX_FRAME_BYTES = 3840 * 2160 * 3


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
        #: What every detector of this factory is given (the first one says).
        self.pixels: Pixels = pixels_of(self._spare)
        self._detectors: OrderedDict[int, Detector] = OrderedDict()

    def detect(self, stream_id: int, image: np.ndarray) -> list[FaceEmotion]:
        detector = self._detectors.get(stream_id)
        if detector is None:
            detector, self._spare = (self._spare, None) if self._spare is not None else (self._factory(), None)
            self._detectors[stream_id] = detector
            while len(self._detectors) > MAX_DETECTORS:
                self._detectors.popitem(last=False)
        else:
            self._detectors.move_to_end(stream_id)
        return coerce_faces(detector.detect(image))

    def forget(self, stream_id: int) -> None:
        self._detectors.pop(stream_id, None)


def image_shape(shape: object) -> tuple[int, ...] | None:
    """``shape`` if it is a plausible (h, w) or (h, w, 3) frame shape, else None."""
    if not isinstance(shape, tuple) or len(shape) not in (2, 3) or not all(type(v) is int and v > 0 for v in shape):
        return None
    if len(shape) == 3 and shape[2] != 3:
        return None
    return shape


def receive_image(conn: Connection, shape: object) -> np.ndarray | None:
    """The pixels that follow a detect request, as a writable uint8 array; None if ``shape`` is not one.

    The raw message is always read (so the stream stays in step) even when it does not fit.
    """
    checked = image_shape(shape)
    if checked is None or math.prod(checked) > MAX_FRAME_BYTES:
        conn.recv_bytes()
        return None
    image = np.empty(checked, np.uint8)
    try:
        size = conn.recv_bytes_into(image.reshape(-1))  # flat: Connection measures len() of its buffer
    except BufferTooShort:
        return None
    return image if size == image.nbytes else None


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
    conn.send(("ready", os.getpid(), pool.pixels))
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
        _, request_id, stream_id, shape = message
        try:
            image = receive_image(conn, shape)
        except (EOFError, OSError):
            return
        started = time.perf_counter()
        try:
            if image is None:
                raise ValueError(f"bad frame shape {shape!r} on the wire")
            faces = pool.detect(stream_id, image)
        except Exception as exc:
            conn.send(("error", request_id, describe(exc), time.perf_counter() - started))
        else:
            conn.send(("result", request_id, faces, time.perf_counter() - started))


if __name__ == "__main__":
    # Through the package's own module, not this __main__ copy: results pickle as emotion.* types.
    from emotion.worker import serve as _serve

    _serve(int(sys.argv[1]))
