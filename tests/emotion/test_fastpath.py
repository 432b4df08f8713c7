"""The fast path's face finding (OpenCV Haar only, no model needed) on composed frames."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from emotion.fastpath import FaceTracker, fer_crop
from emotion.types import Box
from tests.support.faces import (
    Framed,
    Person,
    background,
    landscape,
    load_image,
    make_clip,
    people,
    person,
    place,
    portrait,
)

PEOPLE = people()


def overlap(a: Box, b: tuple[int, int, int, int]) -> float:
    w = max(0, min(a.x + a.w, b[0] + b[2]) - max(a.x, b[0]))
    h = max(0, min(a.y + a.h, b[1] + b[3]) - max(a.y, b[1]))
    return w * h / (a.w * a.h + b[2] * b[3] - w * h)


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("layout", [landscape, portrait], ids=["landscape", "portrait"])
@pytest.mark.parametrize("who", PEOPLE, ids=lambda p: p.name)
def test_finds_the_face_in_a_phone_sized_frame(who: Person, layout: Callable[[Person], Framed]) -> None:
    framed = layout(who)
    box = FaceTracker().locate(grey(framed.image))
    assert box is not None and overlap(box, framed.face_box) > 0.5, (box, framed.face_box)


def test_reuses_the_box_while_the_face_sways_and_redetects_now_and_then() -> None:
    clip = make_clip([(person("happy"), 4.0)], fps=10)
    tracker = FaceTracker(redetect_every=10, full_detect_every=10)
    boxes = [tracker.locate(grey(frame)) for _, frame in clip.frames()]
    assert all(
        b is not None and overlap(b, clip.face_box_at(t)) > 0.5 for b, t in zip(boxes, clip.times(), strict=True)
    )
    assert tracker.full_detections == 1, "one full-frame search, then the face is followed"
    assert tracker.reuses >= 25 and tracker.near_detections >= 3


def test_a_changed_crop_forces_a_new_detection() -> None:
    tracker = FaceTracker(redetect_every=100)
    happy, angry = landscape(person("happy")), landscape(person("angry"))
    tracker.locate(grey(happy.image))
    searches = tracker.full_detections + tracker.near_detections
    tracker.locate(grey(angry.image))
    assert tracker.full_detections + tracker.near_detections == searches + 1


def test_the_largest_of_several_faces_wins() -> None:
    big = place(person("happy"), 640, 480, face_fraction=0.4, center=(0.35, 0.45))
    small = place(person("angry"), 200, 200, face_fraction=0.45).image
    image = big.image.copy()
    image[260:460, 430:630] = small
    box = FaceTracker().locate(grey(image))
    assert box is not None and overlap(box, big.face_box) > 0.5


def test_no_face_in_a_cartoon_or_an_empty_room() -> None:
    assert FaceTracker().locate(grey(load_image("no-faces.jpg"))) is None
    assert FaceTracker().locate(grey(background(640, 480))) is None


def test_a_face_that_leaves_is_lost_at_once() -> None:
    tracker = FaceTracker(redetect_every=100)
    assert tracker.locate(grey(landscape(person("happy")).image)) is not None
    assert tracker.locate(grey(background(640, 480))) is None


def test_tiny_or_odd_frames_do_not_break_it() -> None:
    tracker = FaceTracker()
    assert tracker.locate(np.zeros((1, 640), np.uint8)) is None
    assert tracker.locate(np.zeros((20, 20), np.uint8)) is None


def test_fer_crop_covers_the_square_box_with_fers_offsets_and_stays_in_the_frame() -> None:
    assert fer_crop(640, 480, Box(100, 100, 50, 80)) == (100 - 15 - 12, 100 - 12, 100 - 15 + 80 + 12, 100 + 80 + 12)
    assert fer_crop(640, 480, Box(0, 0, 60, 60)) == (0, 0, 72, 72)
    assert fer_crop(640, 480, Box(600, 440, 40, 40)) == (588, 428, 640, 480)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        FaceTracker(detect_width=10)
    with pytest.raises(ValueError):
        FaceTracker(redetect_every=0)
