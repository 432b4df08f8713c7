"""Support sessions: one customer's call from the queue to its wrap-up, with the events its steps leave."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import RowMapping

from .. import tokens
from . import schema
from .base import Repository, dump_json, from_row, load_json
from .events import event_insert
from .records import CustomerVisit, NewCall, ReportSession, SessionRecord

OPEN_STATES = ("waiting", "active")


def _session(row: RowMapping) -> SessionRecord:
    return from_row(SessionRecord, row, contact=load_json(row["contact"]), context=load_json(row["context"]))


class SessionRepository(Repository):
    async def create_session(self, call: NewCall, *, token_ttl_s: float) -> tuple[SessionRecord, str]:
        """A waiting session and the customer's token for it (stored only as its SHA-256)."""
        token = tokens.new_secret()
        t = schema.now()
        values: dict[str, Any] = {
            "id": tokens.new_session_id(),
            "state": "waiting",
            "reason": call.reason,
            "customer_name": call.customer_name,
            "device": call.device,
            "token_expires_at": t + token_ttl_s,
            "priority": call.priority,
            "rep_id": None,
            "created_at": t,
            "queued_at": t,
            "answered_at": None,
            "ended_at": None,
            "ended_by": None,
            "end_reason": None,
            "emotion_consent": call.emotion_consent,
            "recording_consent": call.recording_consent,
            "customer_ref": call.customer_ref,
            "legal_hold": False,
            "language": call.language,
        }
        contact, context = call.contact, call.context
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(schema.support_sessions).values(
                    **values, token_hash=tokens.digest(token), contact=dump_json(contact), context=dump_json(context)
                )
            )
            await conn.execute(event_insert(values["id"], "created", at=t))
        return SessionRecord(**values, contact=contact or None, context=context or None), token

    async def get_session(self, session_id: str) -> SessionRecord | None:
        s = schema.support_sessions
        row = await self._first(select(s).where(s.c.id == session_id))
        return _session(row) if row else None

    async def session_for_token(self, token: str) -> SessionRecord | None:
        s = schema.support_sessions
        row = await self._first(select(s).where(s.c.token_hash == tokens.digest(token)))
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
        return [_session(r) for r in await self._all(query)]

    async def waiting_sessions(self) -> list[SessionRecord]:
        s = schema.support_sessions
        query = select(s).where(s.c.state == "waiting").order_by(s.c.priority.desc(), s.c.queued_at)
        return [_session(r) for r in await self._all(query)]

    async def active_sessions(self) -> list[SessionRecord]:
        """Calls in progress: a cluster's new leader takes them over (their media is re-offered)."""
        s = schema.support_sessions
        return [_session(r) for r in await self._all(select(s).where(s.c.state == "active").order_by(s.c.answered_at))]

    # the call's steps

    async def claim_session(self, session_id: str, rep_id: int) -> SessionRecord | None:
        """Move waiting → active for this rep; None if someone else got there first."""
        s, t = schema.support_sessions, schema.now()
        async with self.engine.begin() as conn:
            # The WHERE on state makes the claim atomic even across processes.
            result = await conn.execute(
                update(s)
                .where(s.c.id == session_id, s.c.state == "waiting")
                # A transferred call keeps its first answer time: waits are measured to the first rep.
                .values(state="active", rep_id=rep_id, answered_at=func.coalesce(s.c.answered_at, t))
            )
            if result.rowcount != 1:
                return None
            await conn.execute(event_insert(session_id, "answered", {"rep_id": rep_id}, at=t))
        return await self.get_session(session_id)

    async def assign_handler(self, session_id: str, user_id: int) -> None:
        """A supervisor took the live call over: the session is theirs from now on (who handled it)."""
        s = schema.support_sessions
        async with self.engine.begin() as conn:
            await conn.execute(update(s).where(s.c.id == session_id, s.c.state == "active").values(rep_id=user_id))

    async def requeue_session(self, session_id: str, *, reason: str | None, detail: dict[str, Any]) -> SessionRecord:
        """A transfer: active → waiting, with the same context, possibly for another reason."""
        s = schema.support_sessions
        async with self.engine.begin() as conn:
            await conn.execute(
                update(s)
                .where(s.c.id == session_id, s.c.state == "active")
                .values(state="waiting", rep_id=None, reason=reason)
            )
            await conn.execute(event_insert(session_id, "transferred", detail, at=schema.now()))
        record = await self.get_session(session_id)
        assert record is not None
        return record

    async def finish_session(self, session_id: str, *, state: str, ended_by: str, reason: str) -> SessionRecord | None:
        """Close an open session; None if it was already closed."""
        s, t = schema.support_sessions, schema.now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(s)
                .where(s.c.id == session_id, s.c.state.in_(OPEN_STATES))
                .values(state=state, ended_at=t, ended_by=ended_by, end_reason=reason)
            )
            if result.rowcount != 1:
                return None
            await conn.execute(event_insert(session_id, state, {"ended_by": ended_by, "reason": reason}, at=t))
        return await self.get_session(session_id)

    async def interrupt_active_sessions(self) -> list[str]:
        """At start-up: calls that were live when the process died cannot resume their media."""
        s, t = schema.support_sessions, schema.now()
        async with self.engine.begin() as conn:
            ids = [r[0] for r in await conn.execute(select(s.c.id).where(s.c.state == "active"))]
            if ids:
                await conn.execute(
                    update(s)
                    .where(s.c.id.in_(ids))
                    .values(state="interrupted", ended_at=t, ended_by="system", end_reason="server_restart")
                )
                await conn.execute(
                    insert(schema.session_events),
                    [{"session_id": i, "at": t, "kind": "interrupted", "detail": None} for i in ids],
                )
        return ids

    async def set_emotion_consent(self, session_id: str, consent: bool) -> None:
        s = schema.support_sessions
        async with self.engine.begin() as conn:
            await conn.execute(update(s).where(s.c.id == session_id).values(emotion_consent=consent))
            await conn.execute(event_insert(session_id, "emotion_consent", {"consent": consent}, at=schema.now()))

    async def save_wrapup(self, session_id: str, *, disposition: str, notes: str, user_id: int) -> None:
        s, t = schema.support_sessions, schema.now()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(s).where(s.c.id == session_id).values(disposition=disposition, notes=notes, wrapped_at=t)
            )
            await conn.execute(
                event_insert(session_id, "wrapped_up", {"disposition": disposition, "by": user_id}, at=t)
            )

    async def save_rating(self, session_id: str, rating: int, comment: str | None) -> bool:
        """Store the customer's rating once; False if the session was rated already."""
        s = schema.support_sessions
        result = await self._write(
            update(s)
            .where(s.c.id == session_id, s.c.rating.is_(None))
            .values(rating=rating, rating_comment=comment, rated_at=schema.now())
        )
        return result.rowcount == 1

    # reading across sessions

    async def customer_history(self, customer_ref: str, *, exclude: str, limit: int = 10) -> list[CustomerVisit]:
        """An identified customer's earlier sessions, newest first, for the rep's card."""
        s = schema.support_sessions
        query = (
            select(s.c.id, s.c.created_at, s.c.reason, s.c.state, s.c.disposition, s.c.notes, s.c.rating)
            .where(s.c.customer_ref == customer_ref, s.c.id != exclude, s.c.erased_at.is_(None))
            .order_by(s.c.created_at.desc())
            .limit(limit)
        )
        return [from_row(CustomerVisit, r, session_id=r["id"]) for r in await self._all(query)]

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
        return await self._records(ReportSession, query)

    async def recent_waits(self, limit: int = 100) -> list[tuple[str | None, float]]:
        """(reason, wait) of the latest answered calls, newest first."""
        s = schema.support_sessions
        query = (
            select(s.c.reason, s.c.queued_at, s.c.answered_at)
            .where(s.c.answered_at.is_not(None))
            .order_by(s.c.answered_at.desc())
            .limit(limit)
        )
        return [(r["reason"], r["answered_at"] - r["queued_at"]) for r in await self._all(query)]
