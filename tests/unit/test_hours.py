"""Business hours: open or closed at an instant, the next opening, callback slots, and the document's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.calls.hours import ALWAYS_OPEN, BusinessHours, HoursError, parse_hours

AMS = ZoneInfo("Europe/Amsterdam")
WEEKDAYS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def doc(**queue: Any) -> dict[str, Any]:
    return {
        "timezone": "Europe/Amsterdam",
        "callback_wait_threshold_s": 600,
        "queues": [{"queue": "*", "weekly": WEEKDAYS, **queue}],
    }


def ams(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)


def test_no_hours_is_always_open() -> None:
    at = datetime(2026, 12, 25, 3, 0, tzinfo=UTC)
    assert ALWAYS_OPEN.open_now("order", at)
    assert ALWAYS_OPEN.next_opening("order", at) == at


def test_weekly_hours_in_the_centres_zone() -> None:
    hours = parse_hours(doc())
    # Monday 2026-12-07, 09:00 in Amsterdam is 08:00 UTC.
    assert not hours.open_now(None, datetime(2026, 12, 7, 7, 59, tzinfo=UTC))
    assert hours.open_now(None, datetime(2026, 12, 7, 8, 0, tzinfo=UTC))
    assert hours.open_now(None, ams(2026, 12, 7, 16, 59))
    assert not hours.open_now(None, ams(2026, 12, 7, 17, 0))  # [start, end)
    assert not hours.open_now(None, ams(2026, 12, 12, 12, 0))  # Saturday
    # Friday evening: next opening is Monday 09:00 local.
    assert hours.next_opening(None, ams(2026, 12, 11, 18, 0)) == ams(2026, 12, 14, 9, 0).astimezone(UTC)


def test_daylight_saving_keeps_wall_clock_hours() -> None:
    hours = parse_hours(doc())
    # Europe/Amsterdam goes to summer time on Sunday 2026-03-29: 09:00 is 08:00 UTC before, 07:00 UTC after.
    assert hours.next_opening(None, ams(2026, 3, 28, 12, 0)) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert hours.open_now(None, datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert not hours.open_now(None, datetime(2026, 3, 27, 7, 30, tzinfo=UTC))  # 08:30 local, winter
    # And back on 2026-10-25.
    assert hours.next_opening(None, ams(2026, 10, 24, 12, 0)) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_holidays_close_and_special_hours_replace_the_week() -> None:
    hours = parse_hours(doc(holidays=[{"date": "2026-12-25"}, {"date": "2026-12-24", "hours": [["09:00", "12:00"]]}]))
    assert not hours.open_now(None, ams(2026, 12, 25, 10, 0))  # Friday, closed
    assert hours.open_now(None, ams(2026, 12, 24, 11, 59))
    assert not hours.open_now(None, ams(2026, 12, 24, 12, 0))
    assert hours.next_opening(None, ams(2026, 12, 24, 13, 0)) == ams(2026, 12, 28, 9, 0).astimezone(UTC)
    # A holiday on a weekend can open it.
    weekend = parse_hours(doc(holidays=[{"date": "2026-12-26", "hours": [["10:00", "11:00"]]}]))
    assert weekend.open_now(None, ams(2026, 12, 26, 10, 30))


def test_overnight_written_as_two_intervals_stays_open_through_midnight() -> None:
    hours = parse_hours(
        {
            "timezone": "Europe/Amsterdam",
            "queues": [{"queue": "*", "weekly": {"mon": [["22:00", "24:00"]], "tue": [["00:00", "06:00"]]}}],
        }
    )
    assert hours.open_now(None, ams(2026, 12, 7, 23, 59))
    assert hours.open_now(None, ams(2026, 12, 8, 0, 0))
    assert not hours.open_now(None, ams(2026, 12, 8, 6, 0))
    periods = hours.openings(None, ams(2026, 12, 7, 12, 0), days=2)
    assert periods[0] == (ams(2026, 12, 7, 22, 0).astimezone(UTC), ams(2026, 12, 8, 6, 0).astimezone(UTC))


def test_a_queue_of_its_own_overrides_the_default() -> None:
    data = doc()
    data["queues"].append({"queue": "order", "weekly": {d: [["00:00", "24:00"]] for d in ("sat", "sun")}})
    hours = parse_hours(data, {"order", "broken"})
    saturday = ams(2026, 12, 12, 3, 0)
    assert hours.open_now("order", saturday)
    assert not hours.open_now("broken", saturday)
    assert not hours.open_now(None, saturday)


def test_slots_are_hourly_within_the_open_periods() -> None:
    hours = parse_hours(doc())
    slots = hours.slots(None, ams(2026, 12, 11, 15, 20), count=4)
    starts = [s.astimezone(AMS).strftime("%a %H:%M") for s, _e in slots]
    assert starts == ["Fri 16:00", "Mon 09:00", "Mon 10:00", "Mon 11:00"]
    assert all((e - s).total_seconds() == 3600 for s, e in slots)


def test_never_open_has_no_next_opening() -> None:
    hours = parse_hours({"timezone": "UTC", "queues": [{"queue": "*", "weekly": {}}]})
    assert hours.next_opening(None, datetime(2026, 12, 7, tzinfo=UTC)) is None
    assert hours.slots(None, datetime(2026, 12, 7, tzinfo=UTC)) == []


def test_round_trip() -> None:
    data = doc(holidays=[{"date": "2026-12-24", "hours": [["09:00", "12:00"]]}, {"date": "2026-12-25"}])
    assert parse_hours(parse_hours(data).to_json()) == parse_hours(data)
    assert parse_hours(data).to_json()["queues"][0]["weekly"]["sun"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": 5}, "timezone"),
        ({"callback_wait_threshold_s": -1}, "callback_wait_threshold_s"),
        ({"callback_wait_threshold_s": True}, "callback_wait_threshold_s"),
        ({"queues": [{"queue": "*", "weekly": {"mon": [["17:00", "09:00"]]}}]}, "queues[0].weekly.mon[0]"),
        ({"queues": [{"queue": "*", "weekly": {"mon": [["09:00", "09:00"]]}}]}, "queues[0].weekly.mon[0]"),
        (
            {"queues": [{"queue": "*", "weekly": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}]},
            "queues[0].weekly.mon",
        ),
        ({"queues": [{"queue": "*", "weekly": {"mon": [["9:00", "12:00"]]}}]}, "queues[0].weekly.mon[0]"),
        ({"queues": [{"queue": "*", "weekly": {"mon": [["24:00", "24:00"]]}}]}, "queues[0].weekly.mon[0]"),
        ({"queues": [{"queue": "*", "weekly": {"mon": [["09:00", "24:30"]]}}]}, "queues[0].weekly.mon[0]"),
        ({"queues": [{"queue": "*", "weekly": {"funday": []}}]}, "queues[0].weekly.funday"),
        ({"queues": [{"queue": "*", "holidays": [{"date": "2026-02-30"}]}]}, "queues[0].holidays[0].date"),
        ({"queues": [{"queue": "*", "holidays": [{"date": "tomorrow"}]}]}, "queues[0].holidays[0].date"),
        (
            {"queues": [{"queue": "*", "holidays": [{"date": "2026-12-25"}, {"date": "2026-12-25"}]}]},
            "queues[0].holidays[1].date",
        ),
        ({"queues": [{"queue": "nope"}]}, "queues[0].queue"),
        ({"queues": [{"queue": "*"}, {"queue": "*"}]}, "queues[1].queue"),
        ({"queues": [{"queue": "*", "extra": 1}]}, "queues[0].extra"),
    ],
)
def test_bad_documents_name_the_field(change: dict[str, Any], field: str) -> None:
    data = {**doc(), **change}
    with pytest.raises(HoursError) as caught:
        parse_hours(data, {"order"})
    assert str(caught.value).startswith(f"{field}:"), str(caught.value)


def test_default_instance_is_business_hours() -> None:
    assert isinstance(ALWAYS_OPEN, BusinessHours)
    assert ALWAYS_OPEN.to_json() == {"timezone": "UTC", "callback_wait_threshold_s": 600, "queues": []}
