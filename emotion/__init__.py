"""Emotion cues from the customer's video: a pure library, independent of the server.

Importing this package is cheap and works without the ``emotion`` extra: the
LiteRT interpreter that runs fer's model is loaded only inside the worker, and
neither fer's modules nor TensorFlow are imported at all. See
docs/emotion.md for the design and :mod:`emotion.pipeline` for the API.

Names are imported on first use (PEP 562): the worker process imports
``emotion.worker`` and its detector, and so never pays for the server-side
modules (the pipeline, asyncio, PyAV) it does not run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregate import Aggregator, EmotionSettings, TimelineReducer, UpdateThrottle, frustration
    from .detector import Detector, DetectorUnavailable, FerDetector, fer_available
    from .fastpath import FaceTracker, FastFerDetector
    from .frames import InvalidFrame
    from .pipeline import EmotionService, EmotionStream
    from .sampler import AdaptiveSampler, EveryFrame, FrameSampler, Observation, Sampler
    from .types import (
        EXPRESSIONS,
        Box,
        EmotionEvent,
        EmotionStatus,
        EmotionUpdate,
        FaceEmotion,
        Status,
        TimelineRow,
    )
    from .worker import DEFAULT_DETECTOR, DetectorFactory

# Where each public name lives.
_EXPORTS = {
    "DEFAULT_DETECTOR": "worker",
    "DetectorFactory": "worker",
    "EXPRESSIONS": "types",
    "Box": "types",
    "EmotionEvent": "types",
    "EmotionStatus": "types",
    "EmotionUpdate": "types",
    "FaceEmotion": "types",
    "Status": "types",
    "TimelineRow": "types",
    "Aggregator": "aggregate",
    "EmotionSettings": "aggregate",
    "TimelineReducer": "aggregate",
    "UpdateThrottle": "aggregate",
    "frustration": "aggregate",
    "Detector": "detector",
    "DetectorUnavailable": "detector",
    "FerDetector": "detector",
    "fer_available": "detector",
    "FaceTracker": "fastpath",
    "FastFerDetector": "fastpath",
    "InvalidFrame": "frames",
    "EmotionService": "pipeline",
    "EmotionStream": "pipeline",
    "AdaptiveSampler": "sampler",
    "EveryFrame": "sampler",
    "FrameSampler": "sampler",
    "Observation": "sampler",
    "Sampler": "sampler",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "DEFAULT_DETECTOR",
    "EXPRESSIONS",
    "AdaptiveSampler",
    "Aggregator",
    "Box",
    "Detector",
    "DetectorFactory",
    "DetectorUnavailable",
    "EmotionEvent",
    "EmotionService",
    "EmotionSettings",
    "EmotionStatus",
    "EmotionStream",
    "EmotionUpdate",
    "EveryFrame",
    "FaceEmotion",
    "FaceTracker",
    "FastFerDetector",
    "FerDetector",
    "FrameSampler",
    "InvalidFrame",
    "Observation",
    "Sampler",
    "Status",
    "TimelineReducer",
    "TimelineRow",
    "UpdateThrottle",
    "fer_available",
    "frustration",
]
