"""The rules of supervisor assist that need no call: whom a supervisor reaches in each mode, and which calls the
floor says need attention, in what order."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from server.calls.floor import HandleTimes, attention, live_floor
from server.media.assist import ASSIST_MODES, supervisor_reaches

WHOM = {
    # mode: {(role, kind) the supervisor's media reaches}
    None: set(),
    "listen": set(),
    "whisper": {("rep", "audio")},
    "barge": {("rep", "audio"), ("rep", "video"), ("customer", "audio"), ("customer", "video")},
}


@pytest.mark.parametrize("mode", [None, *ASSIST_MODES])
def test_the_supervisor_reaches_the_customer_only_in_a_barge_in(mode: str | None) -> None:
    reached = {
        (role, kind)
        for role in ("customer", "rep")
        for kind in ("audio", "video")
        if supervisor_reaches(role, kind, mode)
    }
    assert reached == WHOM[mode]


def test_an_unknown_mode_reaches_nobody() -> None:
    assert not any(supervisor_reaches(role, "audio", "spy") for role in ("customer", "rep"))


def test_the_usual_handle_time_is_the_median_once_there_are_enough_calls() -> None:
    times = HandleTimes(default_s=900)
    for seconds in (100, 200, 300, 400):
        times.observe("order", seconds)
    assert times.usual("order") == 900, "four calls are too few to go by"
    times.observe("order", 10_000)
    assert times.usual("order") == 300
    assert times.usual("complaint") == 900
    times.observe("order", 0)  # a call never answered says nothing of handle time
    assert times.usual("order") == 300


def live(session_id: str, *, answered_ago: float, help_ago: float | None = None, flag_for: float | None = None) -> Any:
    now = time.time()
    update = SimpleNamespace(flag_active=flag_for is not None, flag_seconds=flag_for or 0.0, smoothed=0.8)
    return SimpleNamespace(
        id=session_id,
        state="active",
        record=SimpleNamespace(answered_at=now - answered_ago, reason="order", language="en"),
        rep=SimpleNamespace(id=7, display_name="Rep Seven"),
        cues=SimpleNamespace(last_update=update),
        help_since=None if help_ago is None else now - help_ago,
        assist=None,
    )


def test_a_call_needs_attention_for_help_frustration_or_length() -> None:
    now = time.time()
    assert attention(live("calm", answered_ago=60), now=now, long_after_s=600) is None
    why, _since = attention(live("help", answered_ago=60, help_ago=5), now=now, long_after_s=600) or ([], 0)
    assert why == ["help"]
    why, since = attention(live("angry", answered_ago=60, flag_for=12), now=now, long_after_s=600) or ([], 0)
    assert why == ["frustration"] and abs(since - (now - 12)) < 1
    why, _since = attention(live("long", answered_ago=700), now=now, long_after_s=600) or ([], 0)
    assert why == ["long_call"]


def test_the_floor_lists_the_most_urgent_first_and_scores_no_rep() -> None:
    calls = [
        live("long", answered_ago=2000),
        live("angry", answered_ago=60, flag_for=30),
        live("help-and-angry", answered_ago=60, help_ago=3, flag_for=3),
        live("help", answered_ago=60, help_ago=20),
        live("calm", answered_ago=60),
    ]
    times = HandleTimes(default_s=900)
    floor = live_floor(calls, [], waiting=[], estimated_wait_s={}, handle_times=times, long_call_factor=2.0)
    order = [(a["session_id"], a["urgency"]) for a in floor["attention"]]
    assert order == [("help-and-angry", 6), ("help", 4), ("angry", 2), ("long", 1)]
    assert all(
        set(a) == {"session_id", "rep", "reason", "talk_s", "why", "urgency", "since"} for a in floor["attention"]
    )
    assert floor["attention"][0]["rep"] == {"id": 7, "display_name": "Rep Seven"}
