"""The frame sampler: a steady analysis rate in media time, lowered when analyses come back slowly."""

from __future__ import annotations

import pytest

from emotion.sampler import EveryFrame, FrameSampler, Sampler


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
    every = EveryFrame()
    assert all(every(t / 30) for t in range(100))
