"""Wrap-up, QA review, legal hold and erasure: their requests, filters and answers."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from .common import (
    Body,
    Count,
    DispositionCode,
    FromDay,
    Query,
    ReasonCode,
    Reply,
    RowId,
    Share,
    Time,
    ToDay,
    UserRef,
)
from .files import SharedFile
from .sessions import ChatMessage, Recording, Session, TimelineSecond

NOTES_MAX = 4000
COMMENTS_MAX = 4000
CRITERIA_MAX = 30
QA_LIMIT_DEFAULT = 100
QA_LIMIT_MAX = 500

Seconds = Annotated[float, Meta(ge=0, le=10**7)]
Answer = Annotated[int, Meta(ge=1, le=5)] | bool
Answers = Annotated[dict[str, Answer], Meta(description="Criterion id to answer.")]


class CustomerPath(msgspec.Struct, kw_only=True):
    customer_ref: Annotated[
        str,
        Meta(
            description="The calling system's customer id; no sessions (or over 128 characters) is 404.",
            max_length=128,
            examples=["crm-77"],
        ),
    ]


# wrap-up


class Disposition(Reply, kw_only=True):
    """A wrap-up outcome."""

    code: DispositionCode
    label: str
    category: str


class DispositionList(Reply, kw_only=True):
    """The wrap-up outcome codes."""

    items: list[Disposition]


class WrapUp(Body, kw_only=True):
    """The outcome of a call and the rep's notes."""

    disposition: DispositionCode
    notes: Annotated[str, Meta(max_length=NOTES_MAX)] = ""
    example: ClassVar[dict[str, Any]] = {"disposition": "resolved", "notes": "Sent a new charger"}


# legal hold and erasure


class LegalHold(Body, kw_only=True):
    """Hold a session, or release it."""

    hold: bool
    note: Annotated[str, Meta(max_length=200)] | None = None
    example: ClassVar[dict[str, Any]] = {"hold": True, "note": "dispute #42"}


class ErasedCounts(Reply, kw_only=True):
    """How many of each were removed."""

    files: Count
    recordings: Count
    chat_messages: Count
    emotion_seconds: Count
    reviews: Count
    webhook_payloads: Count
    session_files: Annotated[Count, Meta(description="Photos, files and snapshots sent in the call.")]
    callbacks: Annotated[Count, Meta(description="Callbacks from or of this call whose contact was blanked.")]


class ErasureReport(Reply, kw_only=True):
    """What erasing one session removed."""

    session_id: str
    erased: ErasedCounts


class RefusedErasure(Reply, kw_only=True):
    """A session erasure left alone, and why."""

    session_id: str
    why: str


class CustomerErasure(Reply, kw_only=True):
    """What erasing one customer's sessions removed, and what it kept."""

    erased: Annotated[list[str], Meta(description="Session ids erased.")]
    refused: Annotated[list[RefusedErasure], Meta(description="Sessions kept: live or on legal hold.")]


# scorecards and reviews


class Criterion(Reply, kw_only=True):
    """One question of the QA rubric."""

    id: Annotated[str, Meta(description="A slug: letters, digits and _.", max_length=40, pattern="^[A-Za-z0-9_]+$")]
    label: Annotated[str, Meta(min_length=1, max_length=200)]
    type: Annotated[Literal["scale", "yesno"], Meta(description="scale: 1-5; yesno: true or false.")]


class Scorecard(Reply, kw_only=True):
    """A version of the QA rubric; earlier reviews keep theirs."""

    id: int
    criteria: list[Criterion]
    created_at: Time
    created_by: int | None


class PutScorecard(Body, kw_only=True):
    """A new version of the rubric."""

    criteria: Annotated[list[Criterion], Meta(min_length=1, max_length=CRITERIA_MAX, description="Ids must be unique.")]

    example: ClassVar[dict[str, Any]] = {
        "criteria": [
            {"id": "greeting", "label": "Greets the customer", "type": "scale"},
            {"id": "resolved", "label": "Issue resolved", "type": "yesno"},
        ]
    }

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for criterion in self.criteria:
            criterion.label = criterion.label.strip()
            if not criterion.label:
                raise ValueError("criteria: label is 1 to 200 characters")
            if criterion.id in seen:
                raise ValueError(f"criteria: id {criterion.id!r} appears twice")
            seen.add(criterion.id)


class AddReview(Body, kw_only=True):
    """A review: every criterion of the scorecard answered."""

    scorecard_id: Annotated[RowId, Meta(description="An existing scorecard (any version).")]
    answers: Answers
    comments: Annotated[str, Meta(max_length=COMMENTS_MAX)] | None = None
    example: ClassVar[dict[str, Any]] = {
        "scorecard_id": 1,
        "answers": {"greeting": 4, "resolved": True},
        "comments": "Good",
    }


class Review(Reply, kw_only=True):
    """A QA review of one session."""

    id: int
    reviewer: UserRef
    scorecard_id: int
    answers: Answers
    comments: str | None
    score: Annotated[float, Meta(description="The share of available points.", ge=0, le=1)]
    created_at: Time


class ComposeJob(Reply, kw_only=True):
    """The side-by-side QA file, queued."""

    id: int
    state: Literal["pending"]


# the QA list


class QaFilters(Query, kw_only=True):
    """Which closed sessions: every filter is optional."""

    from_: FromDay | None = msgspec.field(default=None, name="from")
    to: ToDay | None = None
    rep_id: Annotated[int, Meta(ge=1, le=2**31)] | None = None
    reason: ReasonCode | None = None
    outcome: Annotated[
        Annotated[str, Meta(max_length=64)] | None,
        Meta(description="A disposition code, or a state such as abandoned."),
    ] = None
    min_duration_s: Annotated[Seconds | None, Meta(description="Talk time in seconds, at least.")] = None
    max_duration_s: Annotated[Seconds | None, Meta(description="Talk time in seconds, at most.")] = None
    min_frustration: Annotated[Share | None, Meta(description="The customer's peak frustration, at least.")] = None
    flagged: Annotated[bool | None, Meta(description="Whether the customer's frustration flag went up.")] = None
    qa_status: Literal["scored", "unscored"] | None = None


class QaListQuery(QaFilters, kw_only=True):
    """The QA list's filters and how many rows at most."""

    limit: Annotated[int, Meta(ge=1, le=QA_LIMIT_MAX)] = QA_LIMIT_DEFAULT


class QaRow(Reply, kw_only=True):
    """A closed session in the QA list, with its latest review."""

    session_id: str
    created_at: Time
    answered_at: Time | None
    ended_at: Time | None
    duration_s: Count | None
    reason: str | None
    customer_name: str | None
    state: Literal["ended", "abandoned", "interrupted"]
    rep: UserRef | None
    disposition: str | None
    notes: str | None
    peak_frustration: Share | None
    flag_count: Count
    recorded: bool
    qa_status: Literal["scored", "unscored"]
    score: Share | None
    review: Review | None


class QaList(Reply, kw_only=True):
    """The sessions and the reps who took calls (for the filter)."""

    items: list[QaRow]
    reps: list[UserRef]


# one session's review bundle


class QaSession(Session, kw_only=True):
    """A session as QA sees it."""

    rep: UserRef | None
    disposition_label: str | None


class PlayerChatMessage(ChatMessage, kw_only=True):
    """A chat line, with when it was sent on the player's clock."""

    t: Annotated[float, Meta(description="Seconds on the player's clock; negative while waiting.")]


class PlayerFile(SharedFile, kw_only=True):
    """A photo, file or snapshot, with when it was sent on the player's clock."""

    t: Annotated[float, Meta(description="Seconds on the player's clock; negative while waiting.")]


class Flag(Reply, kw_only=True):
    """A run of seconds with the customer's frustration flag up."""

    start_s: int
    end_s: int
    peak: Share


class AssistMark(Reply, kw_only=True):
    """A supervisor's step in the call, or the rep's call for help, on the player's clock."""

    t: Annotated[float, Meta(description="Seconds on the player's clock.")]
    kind: Annotated[
        Literal["listen", "whisper", "barge", "left", "take_over", "help_asked", "help_closed"],
        Meta(
            description="listen, whisper, barge (joined openly), left, take_over: what the supervisor did; "
            "help_asked, help_closed: the rep's ask for help, raised and answered or withdrawn."
        ),
    ]
    by: Annotated[str | None, Meta(description="The supervisor's display name (null for help_*).")]


class WhisperLine(Reply, kw_only=True):
    """A text whisper: a line the supervisor wrote that only the rep saw."""

    t: Annotated[float, Meta(description="Seconds on the player's clock.")]
    by: str | None
    text: str


class ReviewBundle(Reply, kw_only=True):
    """Everything QA needs to review one session."""

    session: QaSession
    media_epoch: Annotated[Time, Meta(description="Wall-clock time of second 0 of the player and the timeline.")]
    player: Recording | None
    recordings: list[Recording]
    chat: list[PlayerChatMessage]
    files: Annotated[list[PlayerFile], Meta(description="Photos, files and snapshots sent in the call, in order.")]
    timeline: list[TimelineSecond]
    flags: list[Flag]
    assist: Annotated[
        list[AssistMark],
        Meta(
            description="A supervisor's listen, whisper, barge-in, leaving, "
            "take-over, and the rep's asks for help, in order."
        ),
    ]
    whispers: Annotated[list[WhisperLine], Meta(description="Text whispers to the rep, in order.")]
    notes: str | None
    scorecard: Scorecard | None
    reviews: list[Review]
