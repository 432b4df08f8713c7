"""Staff login, the customer page (configuration, starting, rating and calling back), sessions and recordings."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from ...calls import payloads
from ...calls.views import PROTOCOL_VERSION
from ..security import CSRF_HEADER
from .common import (
    SESSION_ID_EXAMPLE,
    AnyObject,
    Body,
    Count,
    FromDay,
    LanguageCode,
    Query,
    ReasonCode,
    Reply,
    RowId,
    SessionId,
    Share,
    Time,
    ToDay,
)
from .files import SharedFile
from .hours import Availability

SESSION_STATES = ("waiting", "active", "ended", "abandoned", "interrupted")
SessionState = Literal["waiting", "active", "ended", "abandoned", "interrupted"]
Role = Literal["rep", "qa", "supervisor", "admin"]
PHONE_PATTERN = r"^\+?[0-9 ()./-]{5,30}$"
CallToken_ = Annotated[
    str, Meta(min_length=20, max_length=128, description="The call's token from POST /api/v1/calls.")
]
Text200 = Annotated[str, Meta(max_length=200)]
# What the customer's page tells about the caller, however the call starts (POST /api/v1/calls, an invite).
Device = Annotated[Text200 | None, Meta(description="The customer's device, as the page describes it.")]
EmotionConsent = Annotated[
    bool | None, Meta(description="The customer's answer to the emotion-cue notice; default: the server's.")
]
RecordingConsent = Annotated[bool | None, Meta(description="Counts under the ask recording policy only; default: no.")]


# staff login


class User(payloads.StaffUser, Reply, kw_only=True):
    """A staff member."""

    # The staff member a staff socket's welcome names (calls.payloads), as an answer: here the role is typed.
    role: Role


class LoginResult(Reply, kw_only=True):
    """The staff member and the login's CSRF token."""

    user: User
    csrf_token: Annotated[
        str, Meta(description=f"Send it back in {CSRF_HEADER} on every unsafe request made with the cookie.")
    ]
    language: Annotated[
        LanguageCode | None,
        Meta(description="The staff pages' language this staff member chose; null: the pages follow the browser."),
    ] = None


class StaffLanguage(Body, kw_only=True):
    """The staff pages' language for the signed-in staff member: one of the deployment's languages (config), or
    null to follow the browser again."""

    language: LanguageCode | None
    example: ClassVar[dict[str, Any]] = {"language": "fa"}


class StaffLanguageSet(Reply, kw_only=True):
    """The staff member's language, as stored."""

    language: LanguageCode | None


class Login(Body, kw_only=True):
    """A staff member's username and password."""

    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(max_length=1024)]
    example: ClassVar[dict[str, Any]] = {"username": "rep1", "password": "correct horse battery"}


# the customer page


class IceServer(Reply, kw_only=True):
    urls: list[str]
    username: str | UnsetType = UNSET
    credential: str | UnsetType = UNSET


class Language(Reply, kw_only=True):
    code: LanguageCode
    name: str
    dir: Literal["ltr", "rtl"]


class HelpArticle(Reply, kw_only=True):
    """A self-help article, in the customer's language where there is one."""

    title: str | None
    body: str | None
    url: str | None


class Reason(Reply, kw_only=True):
    code: ReasonCode
    label: Annotated[str, Meta(description="English; pages translate by code.")]
    help: list[HelpArticle]


class EmotionPolicy(Reply, kw_only=True):
    available: Annotated[bool, Meta(description="Whether emotion cues run on this server.")]
    default_consent: Annotated[bool, Meta(description="Where the consent toggle starts.")]


class RecordingPolicy(Reply, kw_only=True):
    policy: Literal["always", "ask", "never"]


class Config(Reply, kw_only=True):
    """What the customer page needs before a call."""

    protocol: Annotated[
        int, Meta(description="The signalling protocol version.", extra_json_schema={"enum": [PROTOCOL_VERSION]})
    ]
    ice_servers: list[IceServer]
    languages: list[Language]
    language: Annotated[LanguageCode, Meta(description="The server's pick from lang or Accept-Language.")]
    reasons: list[Reason]
    emotion: EmotionPolicy
    recording: RecordingPolicy
    hours: Annotated[Availability, Meta(description="Business hours: each queue open or not, its wait, the slots.")]


class ConfigQuery(Query, kw_only=True):
    lang: Annotated[
        str | None,
        Meta(
            description="A language code to use; anything else is ignored and the language is picked from "
            "Accept-Language (English when nothing matches)."
        ),
    ] = None
    invite: Annotated[
        str | None,
        Meta(
            description="The signed token of an invite link: its language is used when no lang is given. "
            "An expired or tampered token is ignored here."
        ),
    ] = None


class Contact(Body, kw_only=True):
    """Where the customer can be reached; both optional, and checked."""

    email: Annotated[str, Meta(max_length=254, extra_json_schema={"format": "email"})] | None = None
    phone: Annotated[str, Meta(max_length=30, extra_json_schema={"pattern": PHONE_PATTERN})] | None = None


class StartCall(Body, kw_only=True):
    """A customer joins the queue; everything is optional."""

    reason: ReasonCode | None = None
    name: Annotated[Text200 | None, Meta(description="The customer's name.")] = None
    device: Device = None
    language: LanguageCode | None = None
    contact: Contact | None = None
    emotion_consent: EmotionConsent = None
    recording_consent: RecordingConsent = None
    example: ClassVar[dict[str, Any]] = {"reason": "order", "name": "Ada", "language": "en", "emotion_consent": True}


class CallToken(Reply, kw_only=True):
    """The call is queued: what the customer's page needs to join."""

    session_id: Annotated[str, Meta(examples=[SESSION_ID_EXAMPLE])]
    token: Annotated[
        str, Meta(description="The customer's token for /ws/v1 and the rating: 256 random bits, base64url.")
    ]
    expires_at: Time


class Rating(Body, kw_only=True):
    """The customer's rating of a call."""

    token: CallToken_
    rating: Annotated[int, Meta(ge=1, le=5)]
    comment: Annotated[str, Meta(max_length=2000)] | None = None
    example: ClassVar[dict[str, Any]] = {"token": "<the call's token>", "rating": 5, "comment": "Quick and friendly"}


# sessions


class ContactDetails(Reply, kw_only=True):
    """What the customer gave to be reached on."""

    email: str | UnsetType = UNSET
    phone: str | UnsetType = UNSET


class Session(Reply, kw_only=True):
    """A support session (one customer's call)."""

    session_id: SessionId
    language: Annotated[str | None, Meta(description="The customer's language code.")]
    contact: ContactDetails | None
    context: Annotated[AnyObject | None, Meta(description="The invite's context, as the calling system gave it.")]
    priority: Annotated[int, Meta(ge=0, le=100, description="Higher is answered first.")]
    rating: Annotated[
        Annotated[int, Meta(ge=1, le=5)] | None, Meta(description="The customer's rating after the call.")
    ]
    rating_comment: str | None
    customer_ref: Annotated[str | None, Meta(description="The calling system's customer id (from an invite).")]
    disposition: Annotated[str | None, Meta(description="The rep's outcome code, saved at wrap-up.")]
    notes: Annotated[str | None, Meta(description="The rep's wrap-up notes.")]
    wrapped_at: Time | None
    peak_frustration: Annotated[Share | None, Meta(description="The customer's peak frustration (0-1).")]
    flag_count: Annotated[Count | None, Meta(description="Episodes with the customer's frustration flag up.")]
    legal_hold: bool
    erased_at: Time | None
    emotion_consent: Annotated[bool | None, Meta(description="The customer's answer to the emotion-cue notice.")]
    recording_consent: Annotated[
        bool | None, Meta(description="Whether this call may be recorded; null when the policy is never.")
    ]
    state: SessionState
    reason: Annotated[str | None, Meta(description="A reason code (see GET /api/v1/config).")]
    customer_name: str | None
    device: str | None
    rep_id: int | None
    created_at: Time
    queued_at: Time
    answered_at: Time | None
    ended_at: Time | None
    ended_by: Literal["customer", "rep", "system"] | None
    end_reason: Annotated[
        str | None, Meta(description="For example rep_hangup, customer_left, customer_lost, server_restart.")
    ]


class SessionList(Reply, kw_only=True):
    """The sessions, newest first."""

    items: list[Session]


class SessionsQuery(Query, kw_only=True):
    state: SessionState | None = None
    reason: ReasonCode | None = None
    customer_ref: Annotated[
        Annotated[str, Meta(max_length=128)] | None,
        Meta(description="The calling system's customer id.", examples=["crm-77"]),
    ] = None
    from_: FromDay | None = msgspec.field(default=None, name="from")
    to: ToDay | None = None
    limit: Annotated[int, Meta(ge=1, le=500, examples=[20])] = 50


class ChatMessage(Reply, kw_only=True):
    id: int
    session_id: str
    from_: Literal["customer", "rep"] = msgspec.field(name="from")
    name: str | None
    text: str
    at: Time


class SessionEvent(Reply, kw_only=True):
    at: Time
    kind: Annotated[str, Meta(description="created, answered, transferred, ended, wrapped_up, …")]
    detail: AnyObject | None


class TimelineSecond(Reply, kw_only=True):
    """One second of the customer's emotion cues: scores only, never images."""

    second: Annotated[int, Meta(description="Seconds from the start of the customer's video.")]
    samples: Count
    face_present: bool
    mean_frustration: Share | None
    max_frustration: Share | None
    dominant: Annotated[str | None, Meta(description="The dominant expression, e.g. neutral.")]
    flag: bool


class SessionDetail(Session, kw_only=True):
    """A session with its chat, events and per-second emotion timeline."""

    chat: list[ChatMessage]
    files: Annotated[list[SharedFile], Meta(description="Photos, files and snapshots sent in the call, in order.")]
    events: list[SessionEvent]
    emotion_timeline: list[TimelineSecond]


# recordings and the audit log

RecordingState = Literal["recording", "complete", "truncated", "recovered", "failed", "pending", "composing", "deleted"]


class Recording(Reply, kw_only=True):
    """One recorded track, or the composed QA file."""

    id: int
    session_id: str
    participant: Annotated[
        Literal["customer", "rep", "supervisor", "both"],
        Meta(
            description="both: the composed side-by-side file. supervisor: an assisting supervisor's voice, as the "
            "rep heard it (whispers and barge-ins); only barge-ins are in the composed file."
        ),
    ]
    kind: Literal["video", "audio", "composed"]
    state: RecordingState
    progress: Annotated[Share | None, Meta(description="Composing progress, 0-1.")]
    error: str | None
    size: Count | None
    sha256: str | None
    started_at: Time
    ended_at: Time | None
    url: Annotated[str, Meta(description="Where to play it: GET /api/v1/recordings/{id}/media.")]


class RecordingList(Reply, kw_only=True):
    """The recordings."""

    items: list[Recording]


class RecordingPath(msgspec.Struct, kw_only=True):
    not_found: ClassVar[str] = "no such recording"
    recording_id: Annotated[
        RowId,
        Meta(description="The recording's id; anything else (or a file that is not servable) is 404.", examples=[7]),
    ]


class AuditEntry(Reply, kw_only=True):
    id: int
    at: Time
    user_id: int | None
    action: Annotated[str, Meta(description="For example recording.play, qa.export, session.erase.")]
    target: str | None
    detail: AnyObject | None


class AuditLog(Reply, kw_only=True):
    """The entries, newest first."""

    items: list[AuditEntry]
