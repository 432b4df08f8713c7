"""All database reads and writes, behind typed records.

Over 500 lines because every table's queries are still in this one repository; issue 11 splits it into one
repository per aggregate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .. import tokens
from . import schema

ROLES = ("rep", "qa", "supervisor", "admin")
OPEN_STATES = ("waiting", "active")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


def _user(row: RowMapping) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        active=bool(row["active"]),
    )


def _session(row: RowMapping) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        state=row["state"],
        reason=row["reason"],
        customer_name=row["customer_name"],
        device=row["device"],
        token_expires_at=row["token_expires_at"],
        priority=row["priority"],
        rep_id=row["rep_id"],
        created_at=row["created_at"],
        queued_at=row["queued_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        ended_by=row["ended_by"],
        end_reason=row["end_reason"],
        emotion_consent=None if row["emotion_consent"] is None else bool(row["emotion_consent"]),
        recording_consent=None if row["recording_consent"] is None else bool(row["recording_consent"]),
        customer_ref=row["customer_ref"],
        disposition=row["disposition"],
        notes=row["notes"],
        wrapped_at=row["wrapped_at"],
        peak_frustration=row["peak_frustration"],
        flag_count=row["flag_count"],
        legal_hold=bool(row["legal_hold"]),
        erased_at=row["erased_at"],
        language=row["language"],
        contact=json.loads(row["contact"]) if row["contact"] else None,
        context=json.loads(row["context"]) if row["context"] else None,
        rating=row["rating"],
        rating_comment=row["rating_comment"],
    )


def _chat(row: RowMapping) -> ChatRecord:
    return ChatRecord(
        id=row["id"],
        session_id=row["session_id"],
        sender=row["sender"],
        sender_name=row["sender_name"],
        text=row["text"],
        created_at=row["created_at"],
    )


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # users

    async def create_user(self, username: str, display_name: str, role: str, password_hash: str) -> User:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.users).values(
                    username=username,
                    display_name=display_name,
                    role=role,
                    password_hash=password_hash,
                    active=True,
                    created_at=schema.now(),
                )
            )
            user_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        assert user_id is not None
        return User(user_id, username, display_name, role, True)

    async def set_password(self, user_id: int, password_hash: str) -> int:
        """A new password ends every login made with the old one; returns how many were live."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.users).where(schema.users.c.id == user_id).values(password_hash=password_hash)
            )
            return await self._revoke_logins(conn, user_id)

    async def set_active(self, user_id: int, active: bool) -> int:
        """Enable or disable a user; disabling ends their logins. Returns how many logins ended."""
        async with self.engine.begin() as conn:
            await conn.execute(update(schema.users).where(schema.users.c.id == user_id).values(active=active))
            return 0 if active else await self._revoke_logins(conn, user_id)

    @staticmethod
    async def _revoke_logins(conn: AsyncConnection, user_id: int) -> int:
        result = await conn.execute(
            update(schema.staff_logins)
            .where(schema.staff_logins.c.user_id == user_id, schema.staff_logins.c.revoked_at.is_(None))
            .values(revoked_at=schema.now())
        )
        return int(result.rowcount or 0)

    async def user_with_hash(self, username: str) -> tuple[User, str] | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(schema.users).where(schema.users.c.username == username))).mappings().first()
            )
        if row is None:
            return None
        return _user(row), row["password_hash"]

    async def get_user(self, user_id: int) -> User | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(schema.users).where(schema.users.c.id == user_id))).mappings().first()
        return _user(row) if row else None

    async def count_users(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(schema.users))).scalar_one())

    # staff logins

    async def create_login(self, user_id: int, ttl_s: float) -> tuple[str, str]:
        cookie, csrf = tokens.new_secret(), tokens.new_secret(24)
        t = schema.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.staff_logins).values(
                    token_hash=tokens.digest(cookie),
                    user_id=user_id,
                    csrf_token=csrf,
                    created_at=t,
                    expires_at=t + ttl_s,
                )
            )
        return cookie, csrf

    async def get_login(self, cookie: str) -> tuple[User, str, str] | None:
        """(user, csrf_token, login_id) for a live login cookie."""
        key = tokens.digest(cookie)
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(schema.staff_logins, schema.users)
                        .join(schema.users, schema.users.c.id == schema.staff_logins.c.user_id)
                        .where(schema.staff_logins.c.token_hash == key)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None or row["expires_at"] < schema.now() or not row["active"]:
            return None
        return _user(row), row["csrf_token"], key

    async def login_state(self, login_id: str) -> str:
        """``live``, or why a login no longer counts: ``logged_out``, ``expired``, ``disabled``."""
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(
                            schema.staff_logins.c.revoked_at, schema.staff_logins.c.expires_at, schema.users.c.active
                        )
                        .join(schema.users, schema.users.c.id == schema.staff_logins.c.user_id)
                        .where(schema.staff_logins.c.token_hash == login_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["revoked_at"] is not None:
            return "disabled" if row is not None and not row["active"] else "logged_out"
        if not row["active"]:
            return "disabled"
        if row["expires_at"] < schema.now():
            return "expired"
        return "live"

    async def revoke_login(self, login_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.staff_logins)
                .where(schema.staff_logins.c.token_hash == login_id)
                .values(revoked_at=schema.now())
            )

    # support sessions

    async def create_session(
        self,
        *,
        reason: str | None,
        customer_name: str | None,
        device: str | None,
        token_ttl_s: float,
        priority: int = 0,
        emotion_consent: bool | None = None,
        recording_consent: bool | None = None,
        customer_ref: str | None = None,
        language: str | None = None,
        contact: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> tuple[SessionRecord, str]:
        token = tokens.new_secret()
        t = schema.now()
        values: dict[str, Any] = {
            "id": tokens.new_session_id(),
            "state": "waiting",
            "reason": reason,
            "customer_name": customer_name,
            "device": device,
            "token_hash": tokens.digest(token),
            "token_expires_at": t + token_ttl_s,
            "priority": priority,
            "rep_id": None,
            "created_at": t,
            "queued_at": t,
            "answered_at": None,
            "ended_at": None,
            "ended_by": None,
            "end_reason": None,
            "emotion_consent": emotion_consent,
            "recording_consent": recording_consent,
            "customer_ref": customer_ref,
            "legal_hold": False,
            "language": language,
        }
        stored = {
            **values,
            "contact": json.dumps(contact) if contact else None,
            "context": json.dumps(context) if context else None,
        }
        async with self.engine.begin() as conn:
            await conn.execute(insert(schema.support_sessions).values(**stored))
            await conn.execute(insert(schema.session_events).values(session_id=values["id"], at=t, kind="created"))
        values.pop("token_hash")
        return SessionRecord(**values, contact=contact or None, context=context or None), token

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(schema.support_sessions).where(schema.support_sessions.c.id == session_id)))
                .mappings()
                .first()
            )
        return _session(row) if row else None

    async def session_for_token(self, token: str) -> SessionRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(schema.support_sessions).where(
                            schema.support_sessions.c.token_hash == tokens.digest(token)
                        )
                    )
                )
                .mappings()
                .first()
            )
        return _session(row) if row else None

    async def list_sessions(
        self,
        *,
        state: str | None = None,
        limit: int = 50,
        reason: str | None = None,
        customer_ref: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        rep_id: int | None = None,
    ) -> list[SessionRecord]:
        s = schema.support_sessions
        query = select(s).order_by(s.c.created_at.desc()).limit(limit)
        if rep_id is not None:
            query = query.where(s.c.rep_id == rep_id)
        if state:
            query = query.where(s.c.state == state)
        if reason:
            query = query.where(s.c.reason == reason)
        if customer_ref:
            query = query.where(s.c.customer_ref == customer_ref)
        if created_from is not None:
            query = query.where(s.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(s.c.created_at < created_to)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_session(r) for r in rows]

    async def waiting_sessions(self) -> list[SessionRecord]:
        query = (
            select(schema.support_sessions)
            .where(schema.support_sessions.c.state == "waiting")
            .order_by(schema.support_sessions.c.priority.desc(), schema.support_sessions.c.queued_at)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_session(r) for r in rows]

    async def claim_session(self, session_id: str, rep_id: int) -> SessionRecord | None:
        """Move waiting → active for this rep; None if someone else got there first."""
        t = schema.now()
        async with self.engine.begin() as conn:
            # The WHERE on state makes the claim atomic even across processes.
            result = await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id, schema.support_sessions.c.state == "waiting")
                # A transferred call keeps its first answer time: waits are measured to the first rep.
                .values(
                    state="active", rep_id=rep_id, answered_at=func.coalesce(schema.support_sessions.c.answered_at, t)
                )
            )
            if result.rowcount != 1:
                return None
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id, at=t, kind="answered", detail=json.dumps({"rep_id": rep_id})
                )
            )
        return await self.get_session(session_id)

    async def requeue_session(self, session_id: str, *, reason: str | None, detail: dict[str, Any]) -> SessionRecord:
        """A transfer: active → waiting, with the same context, possibly for another reason."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id, schema.support_sessions.c.state == "active")
                .values(state="waiting", rep_id=None, reason=reason)
            )
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id, at=schema.now(), kind="transferred", detail=json.dumps(detail)
                )
            )
        record = await self.get_session(session_id)
        assert record is not None
        return record

    async def get_routing(self, user_id: int) -> tuple[frozenset[str], frozenset[str]]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(schema.users.c.skills, schema.users.c.languages).where(schema.users.c.id == user_id)
                )
            ).first()
        if row is None:
            return frozenset(), frozenset()
        return frozenset(json.loads(row.skills or "[]")), frozenset(json.loads(row.languages or "[]"))

    async def set_routing(self, user_id: int, skills: list[str], languages: list[str]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.users)
                .where(schema.users.c.id == user_id)
                .values(skills=json.dumps(sorted(skills)), languages=json.dumps(sorted(languages)))
            )

    async def list_users(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(schema.users).order_by(schema.users.c.username))).mappings().all()
        return [
            {
                "id": r["id"],
                "username": r["username"],
                "display_name": r["display_name"],
                "role": r["role"],
                "active": bool(r["active"]),
                "skills": json.loads(r["skills"] or "[]"),
                "languages": json.loads(r["languages"] or "[]"),
            }
            for r in rows
        ]

    async def finish_session(self, session_id: str, *, state: str, ended_by: str, reason: str) -> SessionRecord | None:
        """Close an open session; None if it was already closed."""
        t = schema.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id, schema.support_sessions.c.state.in_(OPEN_STATES))
                .values(state=state, ended_at=t, ended_by=ended_by, end_reason=reason)
            )
            if result.rowcount != 1:
                return None
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id,
                    at=t,
                    kind=state,
                    detail=json.dumps({"ended_by": ended_by, "reason": reason}),
                )
            )
        return await self.get_session(session_id)

    async def interrupt_active_sessions(self) -> list[str]:
        """At start-up: calls that were live when the process died cannot resume their media."""
        t = schema.now()
        async with self.engine.begin() as conn:
            ids = [
                r[0]
                for r in await conn.execute(
                    select(schema.support_sessions.c.id).where(schema.support_sessions.c.state == "active")
                )
            ]
            if ids:
                await conn.execute(
                    update(schema.support_sessions)
                    .where(schema.support_sessions.c.id.in_(ids))
                    .values(state="interrupted", ended_at=t, ended_by="system", end_reason="server_restart")
                )
                await conn.execute(
                    insert(schema.session_events),
                    [{"session_id": i, "at": t, "kind": "interrupted", "detail": None} for i in ids],
                )
        return ids

    async def set_emotion_consent(self, session_id: str, consent: bool) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id)
                .values(emotion_consent=consent)
            )
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id,
                    at=schema.now(),
                    kind="emotion_consent",
                    detail=json.dumps({"consent": consent}),
                )
            )

    async def save_wrapup(self, session_id: str, *, disposition: str, notes: str, user_id: int) -> None:
        t = schema.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id)
                .values(disposition=disposition, notes=notes, wrapped_at=t)
            )
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id,
                    at=t,
                    kind="wrapped_up",
                    detail=json.dumps({"disposition": disposition, "by": user_id}),
                )
            )

    async def save_rating(self, session_id: str, rating: int, comment: str | None) -> bool:
        """Store the customer's rating once; False if the session was rated already."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id, schema.support_sessions.c.rating.is_(None))
                .values(rating=rating, rating_comment=comment, rated_at=schema.now())
            )
        return result.rowcount == 1

    async def customer_history(self, customer_ref: str, *, exclude: str, limit: int = 10) -> list[dict[str, Any]]:
        """An identified customer's earlier sessions, newest first, for the rep's card."""
        s = schema.support_sessions
        query = (
            select(s.c.id, s.c.created_at, s.c.reason, s.c.state, s.c.disposition, s.c.notes, s.c.rating)
            .where(s.c.customer_ref == customer_ref, s.c.id != exclude, s.c.erased_at.is_(None))
            .order_by(s.c.created_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {
                "session_id": r["id"],
                "date": iso(r["created_at"]),
                "reason": r["reason"],
                "outcome": r["disposition"] or r["state"],
                "notes": r["notes"],
                "rating": r["rating"],
            }
            for r in rows
        ]

    async def summarize_emotion(self, session_id: str) -> tuple[float | None, int]:
        """Store the customer's peak frustration and number of flag episodes on the session."""
        rows = await self.list_timeline(session_id)
        peak = max((r["max_frustration"] for r in rows if r["max_frustration"] is not None), default=None)
        episodes = sum(1 for i, r in enumerate(rows) if r["flag"] and (i == 0 or not rows[i - 1]["flag"]))
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id)
                .values(peak_frustration=peak, flag_count=episodes)
            )
        return peak, episodes

    async def add_timeline(self, session_id: str, rows: list[dict[str, Any]]) -> None:
        """Store per-second emotion rows; a second seen again (after a reconnect) is replaced."""
        if not rows:
            return
        async with self.engine.begin() as conn:
            seconds = [r["second"] for r in rows]
            await conn.execute(
                delete(schema.emotion_timeline).where(
                    schema.emotion_timeline.c.session_id == session_id, schema.emotion_timeline.c.second.in_(seconds)
                )
            )
            await conn.execute(insert(schema.emotion_timeline), [{"session_id": session_id, **r} for r in rows])

    async def list_timeline(self, session_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(schema.emotion_timeline)
                        .where(schema.emotion_timeline.c.session_id == session_id)
                        .order_by(schema.emotion_timeline.c.second)
                    )
                )
                .mappings()
                .all()
            )
        return [{k: v for k, v in r.items() if k != "session_id"} for r in rows]

    # recordings

    async def add_recording(
        self, session_id: str, participant: str, kind: str, path: str, *, state: str = "recording"
    ) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.recordings).values(
                    session_id=session_id,
                    participant=participant,
                    kind=kind,
                    path=path,
                    state=state,
                    started_at=schema.now(),
                )
            )
            pk = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        return int(pk)

    async def finish_recording(
        self, recording_id: int, *, state: str, size: int, sha256: str, error: str | None = None
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.recordings)
                .where(schema.recordings.c.id == recording_id)
                .values(state=state, size=size, sha256=sha256, ended_at=schema.now(), error=error)
            )

    async def update_recording(self, recording_id: int, **values: Any) -> None:
        allowed = {"state", "epoch", "progress", "error", "size", "sha256", "ended_at"}
        if not values or set(values) - allowed:
            raise ValueError(f"update_recording: only {', '.join(sorted(allowed))}")
        async with self.engine.begin() as conn:
            await conn.execute(update(schema.recordings).where(schema.recordings.c.id == recording_id).values(**values))

    async def recordings_in_state(self, state: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (await conn.execute(select(schema.recordings).where(schema.recordings.c.state == state)))
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    async def list_recordings(self, session_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(schema.recordings)
                        .where(schema.recordings.c.session_id == session_id)
                        .order_by(schema.recordings.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    async def get_recording(self, recording_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(schema.recordings).where(schema.recordings.c.id == recording_id)))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    async def audit(self, user_id: int | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.audit_log).values(
                    at=schema.now(),
                    user_id=user_id,
                    action=action,
                    target=target,
                    detail=json.dumps(detail) if detail else None,
                )
            )

    async def list_audit(self, limit: int = 200) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (await conn.execute(select(schema.audit_log).order_by(schema.audit_log.c.id.desc()).limit(limit)))
                .mappings()
                .all()
            )
        return [
            {**dict(r), "at": iso(r["at"]), "detail": json.loads(r["detail"]) if r["detail"] else None} for r in rows
        ]

    async def add_event(self, session_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.session_events).values(
                    session_id=session_id, at=schema.now(), kind=kind, detail=json.dumps(detail) if detail else None
                )
            )

    async def add_event_once(self, session_id: str, kind: str, detail: dict[str, Any] | None = None) -> bool:
        """Add the event unless the session has one of this kind; one statement, so two racing callers add one."""
        events = schema.session_events
        already = select(events.c.id).where(events.c.session_id == session_id, events.c.kind == kind).exists()
        row = select(
            literal(session_id), literal(schema.now()), literal(kind), literal(json.dumps(detail) if detail else None)
        ).where(~already)
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(events).from_select(["session_id", "at", "kind", "detail"], row))
        return bool(result.rowcount)

    async def list_events(self, session_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(schema.session_events)
                        .where(schema.session_events.c.session_id == session_id)
                        .order_by(schema.session_events.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [
            {"at": iso(r["at"]), "kind": r["kind"], "detail": json.loads(r["detail"]) if r["detail"] else None}
            for r in rows
        ]

    async def report_sessions(self, created_from: float, created_to: float) -> list[ReportSession]:
        """Sessions created in [created_from, created_to), for the supervisors' reports."""
        s = schema.support_sessions
        query = select(
            s.c.created_at,
            s.c.queued_at,
            s.c.answered_at,
            s.c.ended_at,
            s.c.state,
            s.c.reason,
            s.c.rating,
            s.c.flag_count,
        ).where(s.c.created_at >= created_from, s.c.created_at < created_to)
        async with self.engine.connect() as conn:
            return [ReportSession(**r) for r in (await conn.execute(query)).mappings().all()]

    async def recent_waits(self, limit: int = 100) -> list[tuple[str | None, float]]:
        """(reason, wait) of the latest answered calls, newest first."""
        s = schema.support_sessions
        query = (
            select(s.c.reason, s.c.queued_at, s.c.answered_at)
            .where(s.c.answered_at.is_not(None))
            .order_by(s.c.answered_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(reason, answered - queued) for reason, queued, answered in rows]

    # chat

    async def add_chat(self, session_id: str, sender: str, sender_name: str | None, text: str) -> ChatRecord:
        t = schema.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(schema.chat_messages).values(
                    session_id=session_id, sender=sender, sender_name=sender_name, text=text, created_at=t
                )
            )
            pk = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        return ChatRecord(int(pk), session_id, sender, sender_name, text, t)

    async def list_chat(self, session_id: str) -> list[ChatRecord]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(schema.chat_messages)
                        .where(schema.chat_messages.c.session_id == session_id)
                        .order_by(schema.chat_messages.c.id)
                    )
                )
                .mappings()
                .all()
            )
        return [_chat(r) for r in rows]

    # invites

    async def create_invite(
        self,
        *,
        customer_name: str | None,
        reason: str | None,
        created_by: int | None,
        ttl_s: float,
        customer_ref: str | None = None,
        identity: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        language: str | None = None,
        priority: int | None = None,
    ) -> tuple[str, float]:
        code = tokens.new_secret(16)
        t = schema.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.invites).values(
                    code_hash=tokens.digest(code),
                    customer_name=customer_name,
                    reason=reason,
                    customer_ref=customer_ref,
                    identity=json.dumps(identity) if identity else None,
                    context=json.dumps(context) if context else None,
                    language=language,
                    priority=priority,
                    created_by=created_by,
                    created_at=t,
                    expires_at=t + ttl_s,
                )
            )
        return code, t + ttl_s

    async def get_invite(self, code: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(schema.invites).where(schema.invites.c.code_hash == tokens.digest(code))))
                .mappings()
                .first()
            )
        if row is None or row["expires_at"] < schema.now():
            return None
        invite = dict(row)
        for name in ("identity", "context"):
            invite[name] = json.loads(invite[name]) if invite[name] else None
        return invite

    async def link_invite(self, code: str, session_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.invites)
                .where(schema.invites.c.code_hash == tokens.digest(code))
                .values(session_id=session_id)
            )


STORE = web.AppKey("store", Store)
