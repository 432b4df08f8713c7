"""Queries for retention, legal hold and erasure (the policy itself is ``server.recording.retention``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from . import schema
from .store import Store


@dataclass(frozen=True)
class RecordingFile:
    id: int
    path: str
    session_id: str


async def expired_recordings(store: Store, *, ended_before: float, keep_states: tuple[str, ...]) -> list[RecordingFile]:
    """Recordings of sessions that ended before ``ended_before`` and are not on legal hold."""
    r, s = schema.recordings, schema.support_sessions
    query = (
        select(r.c.id, r.c.path, r.c.session_id)
        .join(s, s.c.id == r.c.session_id)
        .where(s.c.ended_at < ended_before, s.c.legal_hold.is_(False), r.c.state.not_in(keep_states))
    )
    async with store.engine.connect() as conn:
        return [RecordingFile(*row) for row in (await conn.execute(query)).all()]


async def set_legal_hold(store: Store, session_id: str, *, hold: bool, note: str | None) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            update(schema.support_sessions)
            .where(schema.support_sessions.c.id == session_id)
            .values(legal_hold=hold, legal_hold_note=note if hold else None)
        )


async def erase_session_rows(store: Store, session_id: str) -> dict[str, int]:
    """In one transaction: delete the session's personal rows and strip the rest; returns counts per kind."""
    counts: dict[str, int] = {}
    async with store.engine.begin() as conn:
        for name, table in (
            ("recordings", schema.recordings),
            ("chat_messages", schema.chat_messages),
            ("emotion_seconds", schema.emotion_timeline),
            ("reviews", schema.qa_reviews),
        ):
            result = await conn.execute(delete(table).where(table.c.session_id == session_id))
            counts[name] = result.rowcount
        await conn.execute(
            update(schema.support_sessions)
            .where(schema.support_sessions.c.id == session_id)
            .values(
                customer_name=None,
                device=None,
                customer_ref=None,
                notes=None,
                peak_frustration=None,
                flag_count=None,
                erased_at=schema.now(),
            )
        )
        # Webhook deliveries carried the session's data to other systems; keep the log, not the data.
        result = await conn.execute(
            update(schema.webhook_deliveries)
            .where(schema.webhook_deliveries.c.payload.contains(f'"{session_id}"'))
            .values(payload=json.dumps({"erased": True, "session_id": session_id}))
        )
        counts["webhook_payloads"] = result.rowcount
        await conn.execute(
            update(schema.invites)
            .where(schema.invites.c.session_id == session_id)
            .values(customer_name=None, customer_ref=None)
        )
    return counts


async def session_ids_of_customer(store: Store, customer_ref: str) -> list[str]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(schema.support_sessions.c.id).where(schema.support_sessions.c.customer_ref == customer_ref)
        )
        return [r[0] for r in rows]
