"""Frustration, smoothing, the flag's hysteresis, throttling and the per-second timeline."""

from __future__ import annotations

import json

import pytest

from emotion.aggregate import Aggregator, EmotionSettings, TimelineReducer, UpdateThrottle, frustration
from emotion.types import Box, EmotionUpdate, FaceEmotion
from tests.support.fakes import face

ANGRY = [face("angry", 0.95)]
HAPPY = [face("happy", 0.95)]


def scoring(value: float, box: Box | None = None) -> FaceEmotion:
    """A face whose frustration is exactly ``value`` (angry ``value``, neutral the rest)."""
    return FaceEmotion(box=box or Box(0, 0, 10, 10), scores={"angry": value, "neutral": 1.0 - value})


def feed(agg: Aggregator, faces: list[FaceEmotion], start: float, end: float, fps: float = 5.0) -> list[EmotionUpdate]:
    """Analyse ``faces`` at ``fps`` from ``start`` (inclusive) to ``end`` (exclusive)."""
    count = round((end - start) * fps)
    return [agg.update(start + i / fps, faces) for i in range(count)]


def first(updates: list[EmotionUpdate], flag: str) -> EmotionUpdate:
    return next(u for u in updates if u.flag == flag)


def test_frustration_weighs_anger_fully_and_ignores_joy() -> None:
    assert frustration(face("angry", 1.0).scores) == pytest.approx(1.0)
    assert frustration(face("happy", 1.0).scores) == 0.0
    assert frustration(face("surprise", 1.0).scores) == 0.0
    assert frustration(face("neutral", 1.0).scores) == 0.0
    assert 0.0 < frustration(face("sad", 1.0).scores) < 0.5, "sadness alone must not reach the raise threshold"
    assert frustration(face("disgust", 1.0).scores) == pytest.approx(0.6)


def test_happy_face_never_raises_the_flag() -> None:
    updates = feed(Aggregator(), HAPPY, 0.0, 30.0)
    assert not any(u.flag_active or u.flag for u in updates)
    assert max(u.smoothed for u in updates) < 0.1


def test_default_settings_flag_an_angry_face_within_two_seconds_at_five_fps() -> None:
    agg = Aggregator()
    happy = feed(agg, HAPPY, 0.0, 5.0)
    angry = feed(agg, ANGRY, 5.0, 10.0)
    raised = first(angry, "raised")
    assert not any(u.flag_active for u in happy)
    assert 5.0 + EmotionSettings().hold_seconds <= raised.media_time <= 7.0
    assert raised.flag_active and raised.dominant == "angry"


def test_flag_waits_for_the_hold_time() -> None:
    agg = Aggregator(EmotionSettings(hold_seconds=3.0, smoothing_seconds=0.0))
    updates = feed(agg, ANGRY, 0.0, 5.0)
    raised = first(updates, "raised")
    assert raised.media_time == pytest.approx(3.0)
    assert all(not u.flag_active for u in updates if u.media_time < 3.0)


def test_a_short_frown_does_not_raise_the_flag() -> None:
    agg = Aggregator(EmotionSettings(hold_seconds=1.0, smoothing_seconds=0.2))
    updates = feed(agg, HAPPY, 0.0, 2.0) + feed(agg, ANGRY, 2.0, 2.6) + feed(agg, HAPPY, 2.6, 6.0)
    assert not any(u.flag for u in updates)


def test_hysteresis_keeps_the_flag_between_the_thresholds() -> None:
    settings = EmotionSettings(raise_threshold=0.5, clear_threshold=0.3, hold_seconds=0.0, smoothing_seconds=0.0)
    agg = Aggregator(settings)
    assert agg.update(0.0, [scoring(0.9)]).flag == "raised"
    # 0.4 is below the raise threshold but above the clear one: the flag stays up.
    middling = agg.update(1.0, [scoring(0.4)])
    assert middling.flag is None and middling.flag_active
    assert middling.flag_seconds == pytest.approx(1.0)
    cleared = agg.update(2.0, [scoring(0.2)])
    assert cleared.flag == "cleared" and not cleared.flag_active
    assert cleared.flag_seconds == pytest.approx(2.0), "the clearing update says how long the flag lasted"
    # Going back to 0.4 does not re-raise: that needs the raise threshold again.
    assert not agg.update(3.0, [scoring(0.4)]).flag_active


def test_flag_clears_after_the_customer_calms_down() -> None:
    agg = Aggregator()
    updates = feed(agg, ANGRY, 0.0, 4.0) + feed(agg, HAPPY, 4.0, 8.0)
    raised, cleared = first(updates, "raised"), first(updates, "cleared")
    assert raised.media_time < 4.0 < cleared.media_time < 5.0
    assert not updates[-1].flag_active


def test_the_largest_face_is_the_one_read() -> None:
    agg = Aggregator()
    small_angry = face("angry", box=Box(0, 0, 40, 40))
    big_happy = face("happy", box=Box(100, 100, 200, 200))
    update = agg.update(0.0, [small_angry, big_happy])
    assert update.dominant == "happy"
    assert update.frustration == pytest.approx(frustration(big_happy.scores))


def test_no_face_reports_absence_and_holds_the_reading_briefly() -> None:
    agg = Aggregator(EmotionSettings(face_lost_seconds=2.0))
    feed(agg, ANGRY, 0.0, 3.0)
    assert agg.flag_active
    gone = agg.update(3.5, [])
    assert not gone.face_present and gone.frustration is None and gone.dominant is None and gone.scores == {}
    assert gone.flag_active, "a glance away must not clear the flag"
    assert gone.smoothed > 0.5


def test_a_long_absence_resets_the_reading_and_clears_the_flag() -> None:
    agg = Aggregator(EmotionSettings(face_lost_seconds=2.0))
    feed(agg, ANGRY, 0.0, 3.0)
    updates = feed(agg, [], 3.0, 6.0)
    cleared = first(updates, "cleared")
    assert cleared.media_time >= 2.8 + 2.0 - 1e-9
    assert updates[-1].smoothed == 0.0 and not updates[-1].flag_active
    # The next face starts from scratch: no flag until it has been held again.
    assert not agg.update(6.0, ANGRY).flag_active


def test_never_a_face_is_a_calm_empty_reading() -> None:
    updates = feed(Aggregator(), [], 0.0, 5.0)
    assert all(not u.face_present and u.smoothed == 0.0 and u.flag is None for u in updates)


@pytest.mark.parametrize("fps", [2.0, 5.0, 10.0, 25.0])
def test_flag_timing_does_not_depend_on_the_analysis_rate(fps: float) -> None:
    agg = Aggregator()
    feed(agg, HAPPY, 0.0, 5.0, fps=fps)
    raised = first(feed(agg, ANGRY, 5.0, 10.0, fps=fps), "raised")
    # Smoothing crosses 0.5 after ~0.3 s, then the 1 s hold: ~1.3 s, give or take one sample interval.
    assert raised.media_time - 5.0 == pytest.approx(1.3, abs=1 / fps + 0.05)


def test_a_clock_jump_back_starts_over_and_reports_the_flag_cleared() -> None:
    agg = Aggregator()
    feed(agg, ANGRY, 100.0, 104.0)
    assert agg.flag_active
    update = agg.update(0.0, HAPPY)
    assert update.flag == "cleared" and not update.flag_active


def test_update_is_json_ready_and_holds_no_pixels() -> None:
    update = Aggregator().update(1.23456, ANGRY)
    data = update.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["type"] == "emotion.update" and data["dominant"] == "angry" and data["media_time"] == 1.235
    assert set(data["scores"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert all(type(v) in (bool, int, float, str, dict, type(None)) for v in data.values())


def test_settings_reject_inverted_thresholds_and_unknown_weights() -> None:
    with pytest.raises(ValueError, match="clear_threshold"):
        EmotionSettings(raise_threshold=0.3, clear_threshold=0.5)
    with pytest.raises(ValueError, match="unknown"):
        EmotionSettings(frustration_weights={"grumpy": 1.0})
    with pytest.raises(ValueError):
        EmotionSettings(updates_per_second=0)


def test_throttle_passes_a_few_updates_per_second_but_every_flag_change() -> None:
    agg, throttle = Aggregator(), UpdateThrottle(2.0)
    updates = feed(agg, HAPPY, 0.0, 5.0, fps=10) + feed(agg, ANGRY, 5.0, 10.0, fps=10)
    passed = [u for u in updates if throttle.allow(u)]
    assert 15 <= len(passed) <= 25, "about two per second of ten analysed"
    assert [u.flag for u in passed if u.flag] == [u.flag for u in updates if u.flag] == ["raised"]


def test_throttle_passes_a_face_appearing_at_once() -> None:
    agg, throttle = Aggregator(), UpdateThrottle(1.0)
    assert throttle.allow(agg.update(0.0, []))
    assert not throttle.allow(agg.update(0.1, []))
    assert throttle.allow(agg.update(0.2, HAPPY))


def test_timeline_has_one_row_per_second_with_mean_max_and_flag() -> None:
    agg, timeline = Aggregator(), TimelineReducer()
    rows = []
    for update in feed(agg, HAPPY, 0.0, 2.0) + feed(agg, [], 2.0, 3.0) + feed(agg, ANGRY, 3.0, 8.0):
        rows += timeline.add(update)
    rows += timeline.flush()
    assert [r.second for r in rows] == list(range(8))
    assert all(r.samples == 5 for r in rows)
    assert rows[0].dominant == "happy" and rows[0].max_frustration is not None and rows[0].max_frustration < 0.1
    assert not rows[2].face_present and rows[2].mean_frustration is None and rows[2].dominant is None
    assert rows[5].dominant == "angry" and rows[5].mean_frustration is not None and rows[5].mean_frustration > 0.9
    assert [r.flag for r in rows] == [False, False, False, False, True, True, True, True]
    assert json.loads(json.dumps(rows[4].to_dict())) == rows[4].to_dict()
    assert timeline.flush() == []


def test_timeline_skips_seconds_without_analysis() -> None:
    agg, timeline = Aggregator(), TimelineReducer()
    rows = timeline.add(agg.update(0.5, HAPPY)) + timeline.add(agg.update(7.2, HAPPY)) + timeline.flush()
    assert [(r.second, r.samples) for r in rows] == [(0, 1), (7, 1)]
