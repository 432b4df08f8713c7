"""The typed records the :class:`~server.storage.store.Store` returns (and :class:`NewCall`, the one it takes to
start a session): frozen, one per kind of row.

A record has ``to_json()`` only where an HTTP or WebSocket answer sends it, and then it returns exactly what that
answer carries (times as ISO 8601 strings). The records of the separate stores live beside their queries:
reviews and the QA list in :mod:`.reviews`, webhooks in :mod:`.webhooks`, API keys in :mod:`.api_keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload


# A time that is always set gives a str, so callers need no None check.
@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: float | None) -> str | None: ...
def iso(ts: float | None) -> str | None:
    """A stored time (Unix seconds) as the API writes it: UTC, milliseconds, ``Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def api_fields(record: object, names: str) -> dict[str, Any]:
    """The fields ``names`` lists (space-separated, in the answer's order; ``key=field`` sends a field under another
    key) as an API answer writes them: times (``at``, ``*_at``) as ISO 8601 strings, tuples as lists."""
    out: dict[str, Any] = {}
    for item in names.split():
        key, _, name = item.rpartition("=")
        value = getattr(record, name)
        if name == "at" or name.endswith("_at"):
            value = iso(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key or name] = value
    return out


# users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id username display_name role")


@dataclass(frozen=True, slots=True)
class StaffAccount(User):
    """A user as the admins' list shows it: with the reasons and languages calls are routed to them by."""

    skills: tuple[str, ...]
    languages: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        # User.to_json by name: a slots dataclass is a new class, so a bare super() would not find it.
        return {**User.to_json(self), **api_fields(self, "active skills languages")}


# support sessions


@dataclass(frozen=True, slots=True)
class NewCall:
    """What a customer's call starts with, checked by the route that took it (the page's form or an invite):
    built once there and handed on, through the call centre, to the stored session."""

    reason: str | None = None
    customer_name: str | None = None
    device: str | None = None
    language: str | None = None
    contact: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    # None leaves it to the deployment: the call centre applies its default consent and recording policy.
    emotion_consent: bool | None = None
    recording_consent: bool | None = None
    customer_ref: str | None = None
    priority: int = 0
    # Came through a signed invite; the live call shows it, the stored row does not keep it.
    identified: bool = False
    # A callback's call rings first at the rep who started it (when they are free); not stored.
    preferred_rep: int | None = None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    state: str
    reason: str | None
    customer_name: str | None
    device: str | None
    token_expires_at: float
    priority: int
    rep_id: int | None
    created_at: float
    queued_at: float
    answered_at: float | None
    ended_at: float | None
    ended_by: str | None
    end_reason: str | None
    emotion_consent: bool | None = None
    recording_consent: bool | None = None
    customer_ref: str | None = None
    disposition: str | None = None
    notes: str | None = None
    wrapped_at: float | None = None
    peak_frustration: float | None = None
    flag_count: int | None = None
    legal_hold: bool = False
    erased_at: float | None = None
    language: str | None = None
    contact: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    rating: int | None = None
    rating_comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        return api_fields(
            self,
            "session_id=id language contact context priority rating rating_comment customer_ref disposition notes"
            " wrapped_at peak_frustration flag_count legal_hold erased_at emotion_consent recording_consent state"
            " reason customer_name device rep_id created_at queued_at answered_at ended_at ended_by end_reason",
        )


@dataclass(frozen=True, slots=True)
class CustomerVisit:
    """An identified customer's earlier session, as the rep's customer card lists it."""

    session_id: str
    created_at: float
    reason: str | None
    state: str
    disposition: str | None
    notes: str | None
    rating: int | None

    @property
    def outcome(self) -> str:
        """What the rep wrapped the call up as, or how it ended when it was not wrapped up."""
        return self.disposition or self.state

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "session_id date=created_at reason outcome notes rating")


@dataclass(frozen=True, slots=True)
class ReportSession:
    """The columns of a session that supervisors' reports count."""

    created_at: float
    queued_at: float
    answered_at: float | None
    ended_at: float | None
    state: str
    reason: str | None
    rating: int | None
    flag_count: int | None


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A step in a session's life (created, answered, transferred, ended ...)."""

    at: float
    kind: str
    detail: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "at kind detail")


# what a call leaves behind


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: int
    session_id: str
    sender: str
    sender_name: str | None
    text: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id session_id from=sender name=sender_name text at=created_at")


@dataclass(frozen=True, slots=True)
class TimelineSecond:
    """One second of the customer's video, as emotion scores (never images)."""

    second: int
    samples: int
    face_present: bool
    mean_frustration: float | None
    max_frustration: float | None
    dominant: str | None
    flag: bool

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "second samples face_present mean_frustration max_frustration dominant flag")


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded track, or the composed QA file (participant ``both``)."""

    id: int
    session_id: str
    participant: str
    kind: str
    # Relative to the recordings folder.
    path: str
    state: str
    size: int | None
    sha256: str | None
    started_at: float
    ended_at: float | None
    error: str | None
    epoch: float | None
    progress: float | None

    def to_json(self) -> dict[str, Any]:
        """What the API says about the file (never its path on disk)."""
        return api_fields(self, "id session_id participant kind state progress error size sha256 started_at ended_at")


@dataclass(frozen=True, slots=True)
class SessionFile:
    """A photo or file sent in a call's chat, or a snapshot of the customer's camera (``kind``)."""

    id: str
    session_id: str
    sender: str
    sender_user_id: int | None
    kind: str
    name: str
    media_type: str
    size: int
    width: int | None
    height: int | None
    # Relative to the recordings folder; never sent.
    path: str
    sha256: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        """What staff see of it (never its path on disk); the file itself is served by id."""
        return api_fields(self, "id session_id from=sender kind name media_type size width height at=created_at")


# invites and the audit log


@dataclass(frozen=True, slots=True)
class Invite:
    """An invite link as stored (the code itself is only ever stored hashed)."""

    id: str | None
    customer_name: str | None
    reason: str | None
    created_by: int | None
    created_at: float
    expires_at: float
    session_id: str | None
    customer_ref: str | None
    identity: dict[str, Any] | None
    context: dict[str, Any] | None
    language: str | None
    priority: int | None
    claimed_at: float | None
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    user_id: int | None
    action: str
    target: str | None
    detail: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id at user_id action target detail")


# callbacks (server/storage/callbacks.py)


@dataclass(frozen=True, slots=True)
class Callback:
    """A customer's request to be called back, and how far it got."""

    id: str
    reason: str | None
    language: str | None
    customer_name: str | None
    contact: dict[str, Any] | None
    window_start: float | None
    window_end: float | None
    state: str
    created_at: float
    due_at: float
    started_at: float | None
    started_by: int | None
    ended_at: float | None
    invite_id: str | None
    session_id: str | None
    origin_session_id: str | None

    def to_json(self) -> dict[str, Any]:
        out = api_fields(
            self, "id state reason language customer_name contact created_at due_at started_at started_by ended_at"
        )
        out["window"] = (
            {"start": iso(self.window_start), "end": iso(self.window_end)}
            if self.window_start is not None and self.window_end is not None
            else None
        )
        out["session_id"] = self.session_id
        return out
