"""Business hours: the document an admin edits, and what the customer page is told about a queue's hours."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from .common import Body, Count, Reply, Time

HHMM = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$", description="Local time HH:MM; 24:00 ends a day.")
]
Interval = Annotated[list[HHMM], Meta(min_length=2, max_length=2, description='["HH:MM", "HH:MM"]: from, until.')]
Day = Annotated[list[Interval], Meta(max_length=12, description="The day's opening intervals; none: closed.")]
Queue = Annotated[
    str,
    Meta(min_length=1, max_length=64, description='A reason code, or "*" for every queue without hours of its own.'),
]
Timezone = Annotated[
    str, Meta(min_length=1, max_length=64, description="An IANA time zone name.", examples=["Europe/Amsterdam"])
]
Threshold = Annotated[
    int,
    Meta(
        ge=0,
        le=86_400,
        description="A waiting customer whose estimated wait passes this many seconds is offered a callback.",
    ),
]
DateText = Annotated[str, Meta(description="A date, YYYY-MM-DD (the centre's calendar).", examples=["2026-12-25"])]

EXAMPLE_HOURS: dict[str, Any] = {
    "timezone": "Europe/Amsterdam",
    "callback_wait_threshold_s": 600,
    "queues": [
        {
            "queue": "*",
            "weekly": {
                **{d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
                "sat": [],
                "sun": [],
            },
            "holidays": [{"date": "2026-12-25"}, {"date": "2026-12-24", "hours": [["09:00", "12:00"]]}],
        }
    ],
}


# the document (PUT body; the GET answer has the same shape, every field sent)


class WeekIn(Body, kw_only=True):
    mon: Day = []
    tue: Day = []
    wed: Day = []
    thu: Day = []
    fri: Day = []
    sat: Day = []
    sun: Day = []


class HolidayIn(Body, kw_only=True):
    date: DateText
    hours: Annotated[list[Interval], Meta(max_length=12, description="Special hours; none: closed all day.")] = []
    name: Annotated[str, Meta(max_length=100)] | None = None


class QueueHoursIn(Body, kw_only=True):
    queue: Queue
    weekly: WeekIn = msgspec.field(default_factory=WeekIn)
    holidays: Annotated[list[HolidayIn], Meta(max_length=400)] = []


class SetBusinessHours(Body, kw_only=True):
    """The centre's business hours: its time zone, the callback threshold, and each queue's week and holidays."""

    timezone: Timezone
    callback_wait_threshold_s: Threshold = 600
    queues: Annotated[list[QueueHoursIn], Meta(max_length=100)] = []
    example: ClassVar[dict[str, Any]] = EXAMPLE_HOURS


class Week(Reply, kw_only=True):
    mon: list[Interval]
    tue: list[Interval]
    wed: list[Interval]
    thu: list[Interval]
    fri: list[Interval]
    sat: list[Interval]
    sun: list[Interval]


class Holiday(Reply, kw_only=True):
    date: DateText
    hours: Annotated[list[Interval], Meta(description="Left out: closed all day.")] | UnsetType = UNSET


class QueueHours(Reply, kw_only=True):
    queue: Queue
    weekly: Week
    holidays: list[Holiday]


class BusinessHours(Reply, kw_only=True):
    """The centre's business hours. No queues: always open."""

    timezone: Timezone
    callback_wait_threshold_s: Threshold
    queues: list[QueueHours]


# what the customer page is told (in GET /api/v1/config)


class Slot(Reply, kw_only=True):
    start: Time
    end: Time


class QueueAvailability(Reply, kw_only=True):
    """Whether a queue takes calls now, when it opens next, and how long a customer joining now would wait."""

    queue: Annotated[str, Meta(description='A reason code, or "*" for a call without one.')]
    open: bool
    next_opening: Annotated[
        Time | None, Meta(description="Now when open; null when it opens on none of the next days.")
    ]
    estimated_wait_s: Count
    callback_slots: Annotated[list[Slot], Meta(description="The next open hours, to choose a callback time from.")]


class Availability(Reply, kw_only=True):
    """Business hours as the customer page needs them."""

    timezone: str
    callback_wait_threshold_s: Count
    queues: list[QueueAvailability]
