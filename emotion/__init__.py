"""Emotion cues from the customer's video: a pure library, independent of the server.

Importing this package is cheap and works without the ``emotion`` extra: the
LiteRT interpreter that runs fer's model is loaded only inside the worker, and
neither fer's modules nor TensorFlow are imported at all. See
docs/emotion.md for the design and :mod:`emotion.pipeline` for the API.
"""

from .aggregate import Aggregator, EmotionSettings, TimelineReducer, UpdateThrottle, frustration
from .detector import Detector, DetectorUnavailable, FerDetector, fer_available
from .fastpath import FaceTracker, FastFerDetector
from .frames import InvalidFrame
from .pipeline import EmotionService, EmotionStream
from .sampler import EveryFrame, FrameSampler, Sampler
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

__all__ = [
    "DEFAULT_DETECTOR",
    "EXPRESSIONS",
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
    "Sampler",
    "Status",
    "TimelineReducer",
    "TimelineRow",
    "UpdateThrottle",
    "fer_available",
    "frustration",
]
