"""Hostile and odd inputs at the door: clear errors, never a crash; big frames shrink before analysis."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from emotion.frames import (
    InvalidFrame,
    analysed_size,
    check_frame,
    check_media_time,
    face_thumbnail,
    fit,
    to_bgr,
    to_grey,
)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (None, "None"),
        ("http://example.invalid/face.jpg", "got str"),
        (b"\x00" * 12, "got bytes"),
        ([[0, 0, 0]], "got list"),
        (np.zeros((48, 64, 3), np.float32), "dtype float32"),
        (np.zeros((48, 64, 3), np.int64), "dtype int64"),
        (np.zeros((48, 64, 3), bool), "dtype bool"),
        (np.zeros((48, 64, 2), np.uint8), r"got \(48, 64, 2\)"),
        (np.zeros((2, 48, 64, 3), np.uint8), "shape"),
        (np.zeros(64, np.uint8), "shape"),
        (np.zeros((0, 64, 3), np.uint8), "empty"),
        (np.zeros((48, 0), np.uint8), "empty"),
    ],
)
def test_invalid_frames_are_refused_with_a_reason(frame: object, reason: str) -> None:
    with pytest.raises(InvalidFrame, match=reason):
        check_frame(frame)
    with pytest.raises(InvalidFrame):
        to_bgr(frame)  # type: ignore[arg-type]


def test_invalid_frame_is_a_value_error() -> None:
    assert issubclass(InvalidFrame, ValueError)


def test_an_absurdly_large_array_is_refused_without_reading_it() -> None:
    # A read-only broadcast view: gigapixels of shape, one byte of memory.
    huge = np.broadcast_to(np.zeros(1, np.uint8), (100_000, 100_000, 3))
    with pytest.raises(InvalidFrame, match="too large"):
        check_frame(huge)


@pytest.mark.parametrize("value", [None, "soon", float("nan"), float("inf")])
def test_media_time_must_be_a_finite_number(value: object) -> None:
    with pytest.raises(InvalidFrame, match="media_time"):
        check_media_time(value)


def test_media_time_accepts_numbers_of_any_kind() -> None:
    assert check_media_time(np.float32(1.5)) == 1.5 and check_media_time(2) == 2.0


def test_big_frames_are_downscaled_keeping_the_aspect_ratio() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8)
    out = to_bgr(frame, 640)
    assert out.shape == (480, 640, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    portrait = to_bgr(np.zeros((1920, 1080, 3), np.uint8), 640)
    assert portrait.shape == (640, 360, 3)


def test_small_frames_are_copied_not_shared() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    out = to_bgr(frame)
    frame[:] = 255
    assert out.shape == (48, 64, 3) and out.max() == 0


def test_grey_and_bgra_arrays_become_bgr() -> None:
    grey = np.full((48, 64), 77, np.uint8)
    assert to_bgr(grey).shape == (48, 64, 3) and to_bgr(grey).max() == 77
    assert to_bgr(grey[:, :, None]).shape == (48, 64, 3)
    bgra = np.zeros((48, 64, 4), np.uint8)
    bgra[..., 2] = 200
    out = to_bgr(bgra)
    assert out.shape == (48, 64, 3) and out[..., 2].min() == 200


def test_non_contiguous_views_are_accepted() -> None:
    frame = np.zeros((96, 128, 3), np.uint8)[::2, ::2]
    assert to_bgr(frame).shape == (48, 64, 3)


def test_video_frames_convert_from_yuv_and_shrink() -> None:
    bgr = np.zeros((720, 1280, 3), np.uint8)
    bgr[..., 1] = 200
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
    out = to_bgr(frame, 640)
    assert out.shape == (360, 640, 3)
    assert abs(int(out[..., 1].mean()) - 200) < 6 and out[..., 0].mean() < 20


def test_fit() -> None:
    assert fit(640, 480, 640) == (640, 480)
    assert fit(1280, 720, 640) == (640, 360)
    assert fit(10, 10_000, 640) == (1, 640)


def yuv(image: np.ndarray, fmt: str = "yuv420p") -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format=fmt)


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    ramp = np.linspace(0, 255, width, dtype=np.float32)[np.newaxis, :].repeat(height, axis=0)
    return cv2.cvtColor(ramp.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def test_a_yuv_frame_becomes_grey_from_its_y_plane_like_the_bgr_path() -> None:
    image = gradient()
    for fmt in ("yuv420p", "nv12", "yuv444p"):
        frame = yuv(image, fmt)
        grey = to_grey(frame)
        via_bgr = cv2.cvtColor(to_bgr(frame), cv2.COLOR_BGR2GRAY)
        assert grey.shape == (48, 64) and grey.dtype == np.uint8
        # Video range stretched to full range: within the BGR round trip's rounding.
        assert int(np.abs(grey.astype(int) - via_bgr).max()) <= 3, fmt
        assert grey.min() <= 3 and grey.max() >= 250, "full range, not 16-235"


def test_a_full_range_frame_is_read_as_it_is() -> None:
    frame = yuv(gradient(), "yuvj420p")
    plane = np.frombuffer(frame.planes[0], np.uint8).reshape(48, frame.planes[0].line_size)[:, :64]
    assert np.array_equal(to_grey(frame), plane)


def test_a_padded_y_plane_loses_its_padding_and_big_frames_shrink() -> None:
    frame = yuv(gradient(650, 480))  # libav pads the rows: stride > width
    assert frame.planes[0].line_size > 650
    grey = to_grey(frame, max_side=640)
    assert grey.shape == (473, 640)
    assert analysed_size(frame, 640) == (640, 473) == analysed_size(gradient(650, 480), 640)
    assert to_grey(yuv(gradient(1280, 720)), 640).shape == (360, 640)


def test_other_video_formats_and_arrays_become_grey_too() -> None:
    image = gradient()
    rgb = av.VideoFrame.from_ndarray(image[:, :, ::-1].copy(), format="rgb24")
    assert np.array_equal(to_grey(rgb), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert np.array_equal(to_grey(image), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert np.array_equal(to_grey(bgra), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    grey = image[:, :, 0].copy()
    assert np.shares_memory(to_grey(grey), grey), "no copy: the socket send is the copy"
    assert to_grey(grey[:, :, np.newaxis]).shape == (48, 64)
    with pytest.raises(InvalidFrame):
        to_grey(np.zeros((48, 64, 3), np.float32))


def test_the_face_probe_reads_only_what_it_can() -> None:
    image = gradient()
    box = (0.25, 0.25, 0.5, 0.5)
    thumb = face_thumbnail(yuv(image), box)
    assert thumb is not None and thumb.shape == (16, 16) and abs(float(thumb.mean())) < 1e-3
    assert face_thumbnail(image, box) is not None and face_thumbnail(image[:, :, 0], box) is not None
    for bad_box in ((float("nan"), 0.2, 0.5, 0.5), (0.2, 0.2, 0.0, 0.5), (2.0, 2.0, 0.5, 0.5)):
        assert face_thumbnail(image, bad_box) is None
    for bad_frame in (None, "frame", np.zeros((48, 64), np.float32), np.zeros((0, 64), np.uint8)):
        assert face_thumbnail(bad_frame, box) is None
