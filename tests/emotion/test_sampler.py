"""The frame sampler: a steady analysis rate in media time, lowered when analyses come back slowly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from emotion.sampler import AdaptiveSampler, EveryFrame, FrameSampler, Observation, Sampler


def kept(sampler: FrameSampler, fps: float, seconds: float, start: float = 0.0) -> list[float]:
    times = [start + i / fps for i in range(round(seconds * fps))]
    return [t for t in times if sampler(t)]


def test_keeps_five_of_thirty_frames_per_second_evenly() -> None:
    times = kept(FrameSampler(5.0), 30, 10.0)
    assert len(times) == 50
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.2, abs=0.001) and max(gaps) == pytest.approx(0.2, abs=0.001)


def test_keeps_every_frame_of_a_slower_source() -> None:
    assert len(kept(FrameSampler(5.0), 4, 5.0)) == 20


def test_uneven_frame_times_still_give_about_the_target_rate() -> None:
    times = [i * 0.033 + (0.01 if i % 3 else 0.0) for i in range(300)]
    sampler = FrameSampler(5.0)
    assert 45 <= sum(sampler(t) for t in times) <= 52


def test_slow_analyses_lower_the_rate_but_not_below_the_floor() -> None:
    sampler = FrameSampler(5.0, min_fps=0.5, headroom=1.0)
    for _ in range(20):
        sampler.record(0.5)  # each analysis takes half a second: at most 2 per second
    assert sampler.effective_fps == pytest.approx(2.0, rel=0.01)
    assert len(kept(sampler, 30, 10.0)) == pytest.approx(20, abs=1)
    for _ in range(40):
        sampler.record(10.0)
    assert sampler.effective_fps == 0.5


def test_fast_analyses_restore_the_target_rate() -> None:
    sampler = FrameSampler(5.0)
    for _ in range(10):
        sampler.record(2.0)
    for _ in range(30):
        sampler.record(0.01)
    assert sampler.effective_fps == 5.0


def test_a_jump_back_in_media_time_restarts_sampling() -> None:
    sampler = FrameSampler(5.0)
    kept(sampler, 30, 3.0, start=100.0)
    assert sampler(0.0), "a new source starting at zero must not wait 100 s"
    assert not sampler(0.05)


def test_nonsense_times_and_latencies_are_ignored() -> None:
    sampler = FrameSampler(5.0)
    assert not sampler(float("nan")) and not sampler(float("inf"))
    sampler.record(float("nan"))
    sampler.record(-1.0)
    assert sampler.latency_s is None and sampler.effective_fps == 5.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        FrameSampler(0)
    with pytest.raises(ValueError):
        FrameSampler(5.0, min_fps=6.0)


def test_both_policies_satisfy_the_protocol() -> None:
    assert isinstance(FrameSampler(), Sampler) and isinstance(EveryFrame(), Sampler)
    assert isinstance(AdaptiveSampler(), Sampler)
    every = EveryFrame()
    assert all(every(t / 30) for t in range(100))


# -- the adaptive sampler: driven with observations made up here (no model, no pipeline) --

STEADY = {"happy": 0.9, "neutral": 0.1}
BOX = (0.3, 0.2, 0.3, 0.4)


def seen(
    t: float,
    dominant: str | None = "happy",
    scores: dict[str, float] | None = None,
    box: tuple[float, float, float, float] | None = BOX,
    smoothed: float = 0.05,
    flag_active: bool = False,
) -> Observation:
    return Observation(t, dominant, STEADY if scores is None else scores, box, smoothed, flag_active)


def face_frame(seed: int, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A grey frame with a random pattern (seeded) all over: the 'face' the probe looks at."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)


def run(
    sampler: AdaptiveSampler,
    seconds: float,
    start: float = 0.0,
    observe: Callable[[float], Observation] = seen,
    frame: Callable[[float], object] = lambda t: face_frame(1),
    latency: float = 0.01,
) -> list[float]:
    """30 fps for ``seconds``; every kept frame is analysed at once and its observation reported."""
    kept = []
    for i in range(round(seconds * 30)):
        t = start + i / 30
        if sampler(t, frame(t)):
            kept.append(t)
            sampler.record(latency)
            sampler.observe(observe(t))
    return kept


def test_a_steady_face_backs_off_to_the_floor() -> None:
    sampler = AdaptiveSampler(5.0, floor_fps=1.0)
    kept = run(sampler, 10.0)
    gaps = [round(b - a, 2) for a, b in zip(kept, kept[1:], strict=False)]
    assert gaps[:2] == [0.2, 0.2], "full rate until the reading has settled"
    assert gaps[2:4] == [0.4, 0.8] and set(gaps[4:]) == {1.0}, "then doubling up to the floor"
    assert len(kept) == pytest.approx(13, abs=1) and sampler.skipped_steady > 0


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("another expression", {"dominant": "sad", "scores": {"sad": 0.6, "happy": 0.4}}),
        ("scores moved", {"scores": {"happy": 0.7, "neutral": 0.3}}),
        ("face lost", {"dominant": None, "scores": {}, "box": None}),
        ("box jumped", {"box": (0.5, 0.2, 0.3, 0.4)}),
        ("box grew", {"box": (0.3, 0.2, 0.45, 0.55)}),
        ("frustration near the threshold", {"smoothed": 0.35}),
        ("flag up", {"flag_active": True}),
        ("NaN score", {"scores": {"happy": float("nan"), "neutral": 0.1}}),
        ("NaN box", {"box": (float("nan"), 0.2, 0.3, 0.4)}),
        ("NaN frustration", {"smoothed": float("nan")}),
        ("empty box", {"box": (0.3, 0.2, 0.0, 0.4)}),
    ],
)
def test_any_change_in_the_reading_snaps_back_to_full_rate(name: str, change: dict[str, Any]) -> None:
    sampler = AdaptiveSampler(5.0)
    run(sampler, 5.0)
    assert sampler.backoff_s == 1.0
    sampler.observe(seen(5.0, **change))
    assert sampler.steady == 0 and sampler.backoff_s == 0.0, name
    kept = run(sampler, 0.5, start=5.1)
    assert len(kept) >= 2 and kept[1] - kept[0] <= 0.2 + 0.001, f"{name}: the next frames at full rate"


def test_a_changed_face_between_analyses_is_analysed_at_the_next_full_rate_frame() -> None:
    sampler = AdaptiveSampler(5.0)
    last = run(sampler, 5.0)[-1]
    assert sampler.backoff_s == 1.0
    # The expression changes 0.3 s after an analysis, the next being due 1 s after it.
    change = last + 0.3
    kept = run(sampler, 1.0, start=5.0, frame=lambda t: face_frame(1 if t < change else 2))
    first_changed = next(t for t in kept if t >= change)
    assert first_changed <= change + 0.2 + 0.001 and sampler.snapped_back == 1


def test_sensor_noise_and_small_sway_do_not_count_as_a_change() -> None:
    base = cv2.GaussianBlur(face_frame(1, (128, 96)), (9, 9), 3)
    noise = np.random.default_rng(7)

    def shaky(t: float) -> np.ndarray:
        jitter = noise.integers(-3, 4, base.shape)
        return np.clip(np.roll(base, round(2 * np.sin(t)), axis=1) + jitter, 0, 255).astype(np.uint8)

    sampler = AdaptiveSampler(5.0)
    assert len(run(sampler, 10.0, frame=shaky)) <= 15 and sampler.snapped_back == 0


def test_jittery_boxes_never_back_off() -> None:
    wobble = [(0.3, 0.2, 0.3, 0.4), (0.36, 0.2, 0.3, 0.4)]  # 0.2 of the face's size, every analysis
    sampler = AdaptiveSampler(5.0, box_tolerance=0.15)
    kept = run(sampler, 5.0, observe=lambda t: seen(t, box=wobble[round(t * 5) % 2]))
    assert len(kept) == 25 and sampler.skipped_steady == 0


def test_without_a_face_it_stays_at_full_rate() -> None:
    sampler = AdaptiveSampler(5.0)
    assert len(run(sampler, 5.0, observe=lambda t: seen(t, None, {}, None))) == 25


def test_frames_it_cannot_look_at_are_analysed_rather_than_guessed() -> None:
    sampler = AdaptiveSampler(5.0)
    assert len(run(sampler, 5.0, frame=lambda t: None)) == 25
    assert len(run(AdaptiveSampler(5.0), 5.0, frame=lambda t: np.zeros((4, 4), np.float32))) == 25


def test_the_load_limit_still_applies_while_backing_off() -> None:
    sampler = AdaptiveSampler(5.0, min_fps=0.5, headroom=1.0)
    for _ in range(20):
        sampler.record(1.0)
    assert sampler.effective_fps == pytest.approx(1.0, rel=0.01)
    kept = run(sampler, 10.0, latency=1.0)
    assert all(b - a >= 0.99 for a, b in zip(kept, kept[1:], strict=False))
    assert not sampler(float("nan"), face_frame(1))


def test_the_adaptive_sampler_refuses_bad_parameters() -> None:
    for kwargs in ({"floor_fps": 0}, {"floor_fps": 6.0}, {"score_delta": -1}, {"alert_at": 2}, {"settle": 0}):
        with pytest.raises(ValueError):
            AdaptiveSampler(5.0, **kwargs)  # type: ignore[arg-type]
    default = AdaptiveSampler.for_settings(5.0, 0.5)
    assert isinstance(default, Sampler) and default.alert_at == pytest.approx(0.3) and default.floor_fps == 1.0
