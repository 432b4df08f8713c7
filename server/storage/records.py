"""The typed records the :class:`~server.storage.store.Store` returns: frozen, one per kind of row.

A record has ``to_json()`` only where an HTTP or WebSocket answer sends it, and then it returns exactly what that
answer carries (times as ISO 8601 strings). The separate stores keep theirs beside them (``api_keys.ApiKey``,
``webhooks.Endpoint``, ``reviews.Review`` ...).
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


# users


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
        }


@dataclass(frozen=True, slots=True)
class StaffAccount(User):
    """A user as the admins' list shows it: with the reasons and languages calls are routed to them by."""

    skills: tuple[str, ...]
    languages: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        # User.to_json by name: a slots dataclass is a new class, so a bare super() would not find it.
        return {
            **User.to_json(self),
            "active": self.active,
            "skills": list(self.skills),
            "languages": list(self.languages),
        }


# support sessions


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
        return {
            "session_id": self.id,
            "language": self.language,
            "contact": self.contact,
            "context": self.context,
            "priority": self.priority,
            "rating": self.rating,
            "rating_comment": self.rating_comment,
            "customer_ref": self.customer_ref,
            "disposition": self.disposition,
            "notes": self.notes,
            "wrapped_at": iso(self.wrapped_at),
            "peak_frustration": self.peak_frustration,
            "flag_count": self.flag_count,
            "legal_hold": self.legal_hold,
            "erased_at": iso(self.erased_at),
            "emotion_consent": self.emotion_consent,
            "recording_consent": self.recording_consent,
            "state": self.state,
            "reason": self.reason,
            "customer_name": self.customer_name,
            "device": self.device,
            "rep_id": self.rep_id,
            "created_at": iso(self.created_at),
            "queued_at": iso(self.queued_at),
            "answered_at": iso(self.answered_at),
            "ended_at": iso(self.ended_at),
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
        }


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

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "date": iso(self.created_at),
            "reason": self.reason,
            # What the rep wrapped the call up as, or how it ended when it was not wrapped up.
            "outcome": self.disposition or self.state,
            "notes": self.notes,
            "rating": self.rating,
        }


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
        return {"at": iso(self.at), "kind": self.kind, "detail": self.detail}


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
        return {
            "id": self.id,
            "session_id": self.session_id,
            "from": self.sender,
            "name": self.sender_name,
            "text": self.text,
            "at": iso(self.created_at),
        }


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
        return {
            "second": self.second,
            "samples": self.samples,
            "face_present": self.face_present,
            "mean_frustration": self.mean_frustration,
            "max_frustration": self.max_frustration,
            "dominant": self.dominant,
            "flag": self.flag,
        }


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
        return {
            "id": self.id,
            "session_id": self.session_id,
            "participant": self.participant,
            "kind": self.kind,
            "state": self.state,
            "progress": self.progress,
            "error": self.error,
            "size": self.size,
            "sha256": self.sha256,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
        }


@dataclass(frozen=True, slots=True)
class RecordingFile:
    """A recording file that retention may delete."""

    id: int
    path: str
    session_id: str


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
        return {
            "id": self.id,
            "at": iso(self.at),
            "user_id": self.user_id,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }
