"""The live floor, reports and reps' routing: their queries, requests and answers."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from .common import Body, Count, FromDay, LanguageCode, Query, ReasonCode, Reply, RowId, Share, Time, ToDay, UserRef
from .sessions import User

MAX_RANGE_S = 366 * 86_400
REPORT_DEFAULT_DAYS = 7

Seconds = Annotated[float, Meta(ge=0)]


# the live floor


class QueueItem(Reply, kw_only=True):
    """A waiting call."""

    session_id: str
    customer_name: str | None
    reason: str | None
    device: str | None
    priority: Annotated[int, Meta(ge=0, le=100)]
    language: str | None
    identified: Annotated[bool, Meta(description="Came in through a signed invite.")]
    ringing: Annotated[bool, Meta(description="Being offered to a rep right now.")]
    queued_at: Time
    waited_s: Count
    connected: Annotated[bool, Meta(description="The customer's socket is open.")]


class FloorRep(Reply, kw_only=True):
    """A rep and what they are doing."""

    id: int
    display_name: str
    status: Literal["available", "away", "busy", "wrap_up", "offline"]
    idle_s: Count
    session_id: str | None
    skills: list[str]
    languages: list[str]


class LiveCall(Reply, kw_only=True):
    """A call in progress, with the customer's frustration (never the rep's)."""

    session_id: str
    rep: UserRef | None
    reason: str | None
    language: str | None
    talk_s: Count
    customer_frustration: Share | None
    customer_flag: bool
    help: Annotated[bool, Meta(description="The rep asked for help.")]
    assist: Annotated[CallAssist | None, Meta(description="A supervisor in the call, and how.")]


class CallAssist(Reply, kw_only=True):
    """A supervisor listening, whispering or in the call."""

    supervisor: UserRef
    mode: Literal["listen", "whisper", "barge"]


class AttentionItem(Reply, kw_only=True):
    """A live call that needs a supervisor. It names the call and its rep; it never scores the rep."""

    session_id: str
    rep: UserRef | None
    reason: str | None
    talk_s: Count
    why: Annotated[
        list[Literal["help", "frustration", "long_call"]],
        Meta(description="The rep asked for help; the customer's frustration flag is up; the call runs long."),
    ]
    urgency: Annotated[int, Meta(ge=1, description="help 4, frustration 2, a long call 1, summed; highest first.")]
    since: Time


class Floor(Reply, kw_only=True):
    """The live floor: queue, reps, calls, and the calls that need attention (most urgent first)."""

    queue: list[QueueItem]
    reps: list[FloorRep]
    calls: list[LiveCall]
    attention: list[AttentionItem]
    estimated_wait_s: Annotated[
        dict[str, Count], Meta(description="The estimated wait of the next caller, per reason code.")
    ]


# reports


class ReportQuery(Query, kw_only=True):
    """Which days, grouped how."""

    group: Annotated[Literal["day", "reason"], Meta(description="Rows per day or per reason.")] = "day"
    from_: FromDay | None = msgspec.field(default=None, name="from")
    to: ToDay | None = None


class ReportTotals(Reply, kw_only=True):
    """What happened to customers: volumes, waits, handle times, abandonment, ratings."""

    calls: Count
    answered: Count
    abandoned: Count
    abandonment_rate: Share | None
    wait_p50_s: Seconds | None
    wait_p90_s: Seconds | None
    handle_avg_s: Seconds | None
    rating_avg: Annotated[float, Meta(ge=1, le=5)] | None
    ratings: Count
    flagged_share: Annotated[
        Share | None, Meta(description="Of answered calls with cues allowed, the share with a frustration flag.")
    ]
    callbacks_requested: Annotated[Count, Meta(description="Callbacks asked for (on that day, for that reason).")]
    callbacks_started: Annotated[Count, Meta(description="Of those, how many a rep started.")]
    callbacks_completed: Annotated[Count, Meta(description="Of those, how many ended in an answered call.")]


class ReportRow(ReportTotals, kw_only=True):
    """The figures of one day or one reason."""

    key: Annotated[str, Meta(description="The day (YYYY-MM-DD) or the reason code (none: no reason).")]


class Report(Reply, kw_only=True):
    """Volumes, waits, handle times, abandonment and ratings; never a ranking of reps."""

    group: Literal["day", "reason"]
    rows: list[ReportRow]
    totals: ReportTotals


# routing


class StaffUser(User, kw_only=True):
    """A staff account with its routing."""

    active: bool
    skills: Annotated[list[ReasonCode], Meta(description="Reason codes; empty: any.")]
    languages: Annotated[list[LanguageCode], Meta(description="Empty: any.")]


class StaffUserList(Reply, kw_only=True):
    """The staff accounts."""

    items: list[StaffUser]


class SetRouting(Body, kw_only=True):
    """A rep's skills (reason codes) and languages; an empty list (the default) means any."""

    skills: list[ReasonCode] = msgspec.field(default_factory=list)
    languages: list[LanguageCode] = msgspec.field(default_factory=list)
    example: ClassVar[dict[str, Any]] = {"skills": ["order", "complaint"], "languages": ["en", "nl"]}


class UserPath(msgspec.Struct, kw_only=True):
    user_id: Annotated[RowId, Meta(description="A staff account's id; an unknown one is 404.", examples=[2])]
