"""Queries for retention, legal hold and erasure (the policy itself is ``server.recording.retention``)."""

from __future__ import annotations

import json

from sqlalchemy import delete, or_, select, update

from . import schema
from .base import Repository
from .records import Recording

# What erasure blanks in the session's row, which stays for reports (times, reason, outcome): who the customer
# is and how to reach them (name, contact, reference, the calling system's context, device), what they said in
# the rating, the rep's notes and the emotion summary.
ERASED_SESSION_COLUMNS = (
    "customer_name",
    "contact",
    "context",
    "device",
    "customer_ref",
    "rating_comment",
    "notes",
    "peak_frustration",
    "flag_count",
)
# The invite that opened the session carried the same identity.
ERASED_INVITE_COLUMNS = ("customer_name", "customer_ref", "identity", "context")


class ErasureRepository(Repository):
    async def expired_recordings(self, *, ended_before: float, keep_states: tuple[str, ...]) -> list[Recording]:
        """Recordings of sessions that ended before ``ended_before`` and are not on legal hold."""
        r, s = schema.recordings, schema.support_sessions
        query = (
            select(r)
            .join(s, s.c.id == r.c.session_id)
            .where(s.c.ended_at < ended_before, s.c.legal_hold.is_(False), r.c.state.not_in(keep_states))
        )
        return await self._records(Recording, query)

    async def set_legal_hold(self, session_id: str, *, hold: bool, note: str | None) -> None:
        s = schema.support_sessions
        await self._write(
            update(s).where(s.c.id == session_id).values(legal_hold=hold, legal_hold_note=note if hold else None)
        )

    async def session_ids_of_customer(self, customer_ref: str) -> list[str]:
        s = schema.support_sessions
        return [row["id"] for row in await self._all(select(s.c.id).where(s.c.customer_ref == customer_ref))]

    async def erase_session_rows(self, session_id: str) -> dict[str, int]:
        """In one transaction: delete the session's personal rows and strip the rest; returns counts per kind."""
        counts: dict[str, int] = {}
        async with self.engine.begin() as conn:
            for name, table in (
                ("recordings", schema.recordings),
                ("chat_messages", schema.chat_messages),
                ("emotion_seconds", schema.emotion_timeline),
                ("reviews", schema.qa_reviews),
                ("session_files", schema.session_files),
            ):
                result = await conn.execute(delete(table).where(table.c.session_id == session_id))
                counts[name] = result.rowcount
            await conn.execute(
                update(schema.support_sessions)
                .where(schema.support_sessions.c.id == session_id)
                .values({**dict.fromkeys(ERASED_SESSION_COLUMNS), "erased_at": schema.now()})
            )
            # Webhook deliveries carried the session's data to other systems; keep the log, not the data.
            deliveries = schema.webhook_deliveries
            quoted = f'"{session_id}"'
            # LIKE narrows the rows and Python makes the match exact: ids hold "_" (a LIKE wildcard unless escaped)
            # and mixed case, which SQLite's LIKE ignores and PostgreSQL's does not.
            candidates = await conn.execute(
                select(deliveries.c.id, deliveries.c.payload).where(
                    deliveries.c.payload.contains(quoted, autoescape=True)
                )
            )
            mentioning = [row.id for row in candidates if quoted in row.payload]
            if mentioning:
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(mentioning))
                    .values(payload=json.dumps({"erased": True, "session_id": session_id}))
                )
            counts["webhook_payloads"] = len(mentioning)
            await conn.execute(
                update(schema.invites)
                .where(schema.invites.c.session_id == session_id)
                .values(dict.fromkeys(ERASED_INVITE_COLUMNS))
            )
            # Events stay as kind and time (reports count them); their details can hold a callback's contact.
            events = schema.session_events
            await conn.execute(update(events).where(events.c.session_id == session_id).values(detail=None))
            # A callback asked for from this call, or made by it, keeps its times and outcome, not the contact.
            callbacks = schema.callbacks
            result = await conn.execute(
                update(callbacks)
                .where(or_(callbacks.c.session_id == session_id, callbacks.c.origin_session_id == session_id))
                .values(contact=None, customer_name=None)
            )
            counts["callbacks"] = result.rowcount
        return counts
