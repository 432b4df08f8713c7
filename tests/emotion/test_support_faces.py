"""The face fixtures and the frame, clip and y4m helpers other tests build on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support import faces


def test_manifest_images_are_all_present_and_people_fit_their_images() -> None:
    for entry in faces.manifest()["images"]:
        image = faces.load_image(entry["file"])
        assert [image.shape[1], image.shape[0]] == entry["size"]
    for who in faces.people():
        x, y, w, h = who.region
        fx, fy, fw, fh = who.face_box
        assert x <= fx and y <= fy and fx + fw <= x + w and fy + fh <= y + h, who
        assert who.crop().shape == (h, w, 3)


def test_fixture_images_are_read_only_and_crops_are_copies() -> None:
    image = faces.load_image("justin.jpg")
    with pytest.raises(ValueError):
        image[0, 0] = 0
    crop = faces.person("happy", 1).crop()
    crop[:] = 0
    assert faces.person("happy", 1).crop().any()


def test_every_expression_has_a_person_and_no_faces_has_none() -> None:
    assert faces.expressions() == ["surprise", "happy", "sad", "angry"]
    assert len(faces.people("happy")) == 2
    assert faces.images_without_faces() == ["no-faces.jpg"]
    with pytest.raises(KeyError):
        faces.person("bored")


@pytest.mark.parametrize(("make", "shape"), [(faces.landscape, (480, 640, 3)), (faces.portrait, (640, 480, 3))])
def test_phone_frames_have_the_face_inside_on_a_textured_background(
    make: Callable[[faces.Person], faces.Framed], shape: tuple[int, int, int]
) -> None:
    framed = make(faces.person("angry"))
    assert framed.image.shape == shape and framed.image.dtype == np.uint8 and framed.expression == "angry"
    x, y, w, h = framed.face_box
    assert 0 <= x and 0 <= y and x + w <= shape[1] and y + h <= shape[0]
    assert w == pytest.approx(0.35 * min(shape[:2]), abs=2)
    corner = framed.image[:40, :40].astype(int)
    assert corner.std() > 2, "the background is not a flat colour"


def test_frames_are_deterministic() -> None:
    a = faces.landscape(faces.person("sad")).image
    b = faces.landscape(faces.person("sad")).image
    assert np.array_equal(a, b)


def test_happy_then_angry_clip_switches_at_five_seconds() -> None:
    clip = faces.happy_then_angry_clip()
    assert clip.duration == 10.0 and clip.switch_times == [5.0] and clip.frame_count == 300
    assert clip.expression_at(4.99) == "happy" and clip.expression_at(5.0) == "angry"
    assert clip.expression_at(60.0) == "angry", "past the end the last segment holds"
    frames = list(clip.frames())
    assert len(frames) == 300 and frames[1][0] == pytest.approx(1 / 30)
    assert frames[0][1].shape == (480, 640, 3)
    assert not np.array_equal(frames[0][1], frames[10][1]), "the picture sways"


def test_clip_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        faces.make_clip([])
    with pytest.raises(ValueError):
        faces.make_clip([("happy", 0.0)])


def test_y4m_has_chromiums_header_and_round_trips(tmp_path: Path) -> None:
    clip = faces.make_clip([("happy", 0.2), ("angry", 0.2)], fps=10)
    path = tmp_path / "clip.y4m"
    assert faces.write_clip_y4m(path, clip) == 4
    data = path.read_bytes()
    assert data.startswith(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420\nFRAME\n")
    assert len(data) == len(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420\n") + 4 * (6 + 640 * 480 * 3 // 2)
    fps, frames = faces.read_y4m(path)
    assert fps == 10 and len(frames) == 4
    original = clip.frame_at(0.0).astype(int)
    assert np.abs(frames[0].astype(int) - original).mean() < 4, "4:2:0 loses a little colour, nothing more"


def test_y4m_refuses_odd_sizes_and_mixed_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        faces.write_y4m(tmp_path / "odd.y4m", [np.zeros((481, 640, 3), np.uint8)], 30)
    with pytest.raises(ValueError, match="expected"):
        faces.write_y4m(
            tmp_path / "mixed.y4m", [np.zeros((480, 640, 3), np.uint8), np.zeros((240, 320, 3), np.uint8)], 30
        )
    with pytest.raises(ValueError, match="no frames"):
        faces.write_y4m(tmp_path / "empty.y4m", [], 30)
