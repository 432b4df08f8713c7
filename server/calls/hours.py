"""Business hours: when each queue (a reason code, or ``*`` for all) is open, in the centre's time zone.

Pure: no I/O and no clock of its own (every question takes the moment ``at``), so each rule is tested alone.

A queue has weekly opening intervals per weekday and holidays (dates closed all day, or open only during
their own special hours). Intervals are local wall-clock times ``[start, end)`` with ``start < end``;
``"24:00"`` ends an interval at midnight. An interval over midnight is written as two
(``"22:00"-"24:00"`` and ``"00:00"-"06:00"`` the next day): the two touch, so the queue stays open through
midnight. Local times are turned into instants with :mod:`zoneinfo`, so the hours follow daylight saving: an
interval always opens at the same wall-clock time, whatever the UTC offset that day.

A queue without its own hours uses ``*``'s; with neither it is always open (the default, so a server that was
never configured behaves as before business hours existed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALL_QUEUES = "*"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CALLBACK_WAIT_THRESHOLD_S = 600
MAX_THRESHOLD_S = 86_400
MAX_INTERVALS_PER_DAY = 12
MAX_HOLIDAYS = 400
MAX_QUEUES = 100
# How far ahead the next opening and the callback slots are looked for.
LOOKAHEAD_DAYS = 400
SLOT_MINUTES = 60
MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")

Interval = tuple[int, int]  # minutes from local midnight, [start, end)


class HoursError(ValueError):
    """Hours that do not make sense; the message starts with the field (``"queues[0].weekly.mon[1]: ..."``)."""


@dataclass(frozen=True)
class QueueHours:
    """One queue's week and its holidays (a holiday with no intervals is closed all day)."""

    queue: str
    weekly: tuple[tuple[Interval, ...], ...]  # seven days, Monday first
    holidays: Mapping[date, tuple[Interval, ...]] = field(default_factory=dict)

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        special = self.holidays.get(day)
        return special if special is not None else self.weekly[day.weekday()]


@dataclass(frozen=True)
class BusinessHours:
    """The centre's time zone, the wait past which a waiting customer is offered a callback, and each queue's hours."""

    timezone: str = DEFAULT_TIMEZONE
    callback_wait_threshold_s: int = DEFAULT_CALLBACK_WAIT_THRESHOLD_S
    queues: Mapping[str, QueueHours] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def hours_for(self, queue: str | None) -> QueueHours | None:
        """The hours that apply to a reason's queue; None: always open."""
        if queue and queue in self.queues:
            return self.queues[queue]
        return self.queues.get(ALL_QUEUES)

    def open_now(self, queue: str | None, at: datetime) -> bool:
        """Whether the queue is open at the instant ``at`` (an aware datetime)."""
        hours = self.hours_for(queue)
        if hours is None:
            return True
        local = at.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in hours.intervals_on(local.date()))

    def openings(
        self, queue: str | None, at: datetime, *, days: int = LOOKAHEAD_DAYS
    ) -> list[tuple[datetime, datetime]]:
        """The open periods (UTC, touching intervals joined) that end after ``at``, for ``days`` local days."""
        hours = self.hours_for(queue)
        zone = self.zone
        start_day = at.astimezone(zone).date()
        periods: list[tuple[datetime, datetime]] = []
        if hours is None:
            return [(at.astimezone(UTC), at.astimezone(UTC) + timedelta(days=days))]
        for offset in range(days + 1):
            day = start_day + timedelta(days=offset)
            for start, end in hours.intervals_on(day):
                begin, finish = _instant(day, start, zone), _instant(day, end, zone)
                if finish <= begin:  # a DST gap swallowed it
                    continue
                if periods and periods[-1][1] >= begin:
                    periods[-1] = (periods[-1][0], max(periods[-1][1], finish))
                else:
                    periods.append((begin, finish))
        return [(b, e) for b, e in periods if e > at]

    def next_opening(self, queue: str | None, at: datetime) -> datetime | None:
        """When the queue is next open: ``at`` itself if it is open then; None if closed for the look-ahead."""
        if self.open_now(queue, at):
            return at.astimezone(UTC)
        for begin, _end in self.openings(queue, at):
            if begin >= at:
                return begin
        return None

    def slots(
        self, queue: str | None, at: datetime, *, count: int = 12, minutes: int = SLOT_MINUTES
    ) -> list[tuple[datetime, datetime]]:
        """The next open slots for a callback (``minutes`` long, on the hour, the first starting after ``at``)."""
        out: list[tuple[datetime, datetime]] = []
        step = timedelta(minutes=minutes)
        for begin, end in self.openings(queue, at, days=31):
            t = max(begin, _ceil_hour(at))
            while t < end and len(out) < count:
                out.append((t, min(t + step, end)))
                t = t + step
            if len(out) >= count:
                break
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "callback_wait_threshold_s": self.callback_wait_threshold_s,
            "queues": [
                {
                    "queue": q.queue,
                    "weekly": {name: [_pair(i) for i in q.weekly[n]] for n, name in enumerate(DAYS)},
                    "holidays": [
                        {"date": d.isoformat(), **({"hours": [_pair(i) for i in iv]} if iv else {})}
                        for d, iv in sorted(q.holidays.items())
                    ],
                }
                for q in self.queues.values()
            ],
        }


ALWAYS_OPEN = BusinessHours()


def _instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """A local wall-clock minute of a day as a UTC instant (24:00 is the next midnight)."""
    extra, minute = divmod(minute, MINUTES_PER_DAY)
    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone) + timedelta(days=extra)
    # Wall-clock arithmetic across a DST change: normalise through UTC.
    return datetime.fromtimestamp(local.timestamp(), UTC)


def _ceil_hour(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(hours=1)


def _text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _pair(interval: Interval) -> list[str]:
    return [_text(interval[0]), _text(interval[1])]


# parsing: the API's JSON shape, checked hard


def _minute(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise HoursError(f'{where}: a time "HH:MM" (00:00 to 24:00)')
    hours, minutes = int(value[:2]), int(value[3:])
    if hours == 24 and minutes != 0:
        raise HoursError(f"{where}: 24:00 is the latest time")
    return hours * 60 + minutes


def parse_intervals(value: Any, where: str) -> tuple[Interval, ...]:
    """A day's intervals, sorted; inverted, empty or overlapping ones are refused, naming the field."""
    if not isinstance(value, list):
        raise HoursError(f'{where}: a list of ["HH:MM", "HH:MM"] intervals')
    if len(value) > MAX_INTERVALS_PER_DAY:
        raise HoursError(f"{where}: at most {MAX_INTERVALS_PER_DAY} intervals a day")
    out: list[Interval] = []
    for n, item in enumerate(value):
        here = f"{where}[{n}]"
        if not isinstance(item, list) or len(item) != 2:
            raise HoursError(f'{here}: an interval ["HH:MM", "HH:MM"]')
        start, end = _minute(item[0], here), _minute(item[1], here)
        if start == MINUTES_PER_DAY:
            raise HoursError(f"{here}: 24:00 can only end an interval")
        if end <= start:
            raise HoursError(f"{here}: ends before it starts (split an interval over midnight in two)")
        out.append((start, end))
    out.sort()
    for (_s1, e1), (s2, _e2) in zip(out, out[1:], strict=False):
        if s2 < e1:
            raise HoursError(f"{where}: intervals overlap ({_text(s2)} starts before {_text(e1)})")
    return tuple(out)


def parse_timezone(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or ".." in value or value.startswith("/"):
        raise HoursError("timezone: an IANA time zone name, e.g. Europe/Amsterdam")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise HoursError(f"timezone: unknown time zone {value[:64]!r}") from None
    return value


def parse_queue(value: Any, where: str, known_queues: set[str] | None) -> QueueHours:
    if not isinstance(value, dict):
        raise HoursError(f"{where}: an object with queue, weekly and holidays")
    unknown = set(value) - {"queue", "weekly", "holidays"}
    if unknown:
        raise HoursError(f"{where}.{sorted(unknown)[0][:40]}: not a known field")
    queue = value.get("queue")
    if not isinstance(queue, str) or not queue:
        raise HoursError(f'{where}.queue: a reason code, or "*" for every queue')
    if queue != ALL_QUEUES and known_queues is not None and queue not in known_queues:
        raise HoursError(f"{where}.queue: unknown queue {queue[:64]!r}; one of *, {', '.join(sorted(known_queues))}")
    weekly_in = value.get("weekly", {})
    if not isinstance(weekly_in, dict):
        raise HoursError(f"{where}.weekly: an object with mon ... sun")
    for day in weekly_in:
        if day not in DAYS:
            raise HoursError(f"{where}.weekly.{str(day)[:10]}: not a weekday; use {', '.join(DAYS)}")
    weekly = tuple(parse_intervals(weekly_in.get(day, []), f"{where}.weekly.{day}") for day in DAYS)
    holidays_in = value.get("holidays", [])
    if not isinstance(holidays_in, list) or len(holidays_in) > MAX_HOLIDAYS:
        raise HoursError(f"{where}.holidays: a list of at most {MAX_HOLIDAYS} dates")
    holidays: dict[date, tuple[Interval, ...]] = {}
    for n, item in enumerate(holidays_in):
        here = f"{where}.holidays[{n}]"
        if not isinstance(item, dict) or set(item) - {"date", "hours", "name"}:
            raise HoursError(f'{here}: an object {{"date": "YYYY-MM-DD", "hours": [...]}}')
        raw = item.get("date")
        try:
            day = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
        except ValueError:
            day = None
        if day is None:
            raise HoursError(f"{here}.date: a date YYYY-MM-DD")
        if day in holidays:
            raise HoursError(f"{here}.date: {raw} is listed twice")
        holidays[day] = parse_intervals(item.get("hours", []), f"{here}.hours")
    return QueueHours(queue=queue, weekly=weekly, holidays=holidays)


def parse_hours(value: Any, known_queues: set[str] | None = None) -> BusinessHours:
    """The API's business-hours document as :class:`BusinessHours`; :class:`HoursError` naming the field."""
    if not isinstance(value, dict):
        raise HoursError("body: an object with timezone, callback_wait_threshold_s and queues")
    timezone = parse_timezone(value.get("timezone", DEFAULT_TIMEZONE))
    threshold = value.get("callback_wait_threshold_s", DEFAULT_CALLBACK_WAIT_THRESHOLD_S)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= MAX_THRESHOLD_S:
        raise HoursError(f"callback_wait_threshold_s: whole seconds from 0 to {MAX_THRESHOLD_S}")
    queues_in = value.get("queues", [])
    if not isinstance(queues_in, list) or len(queues_in) > MAX_QUEUES:
        raise HoursError(f"queues: a list of at most {MAX_QUEUES} queues")
    queues: dict[str, QueueHours] = {}
    for n, item in enumerate(queues_in):
        hours = parse_queue(item, f"queues[{n}]", known_queues)
        if hours.queue in queues:
            raise HoursError(f"queues[{n}].queue: {hours.queue!r} is listed twice")
        queues[hours.queue] = hours
    return BusinessHours(timezone=timezone, callback_wait_threshold_s=threshold, queues=queues)
