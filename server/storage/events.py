"""What happened, in order: a session's events (created, answered, ended ...) and the staff audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, insert, literal, select

from . import schema
from .base import Repository, dump_json, from_row, load_json
from .records import AuditEntry, SessionEvent


def event_insert(session_id: str, kind: str, detail: dict[str, Any] | None = None, *, at: float) -> Insert:
    """The INSERT of one session event, for a method that writes it in the same transaction as its change."""
    return insert(schema.session_events).values(session_id=session_id, at=at, kind=kind, detail=dump_json(detail))


class EventRepository(Repository):
    # session events

    async def add_event(self, session_id: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        await self._write(event_insert(session_id, kind, detail, at=schema.now()))

    async def add_event_once(self, session_id: str, kind: str, detail: dict[str, Any] | None = None) -> bool:
        """Add the event unless the session has one of this kind; one statement, so two racing callers add one."""
        events = schema.session_events
        already = select(events.c.id).where(events.c.session_id == session_id, events.c.kind == kind).exists()
        row = select(literal(session_id), literal(schema.now()), literal(kind), literal(dump_json(detail))).where(
            ~already
        )
        result = await self._write(insert(events).from_select(["session_id", "at", "kind", "detail"], row))
        return bool(result.rowcount)

    async def list_events(self, session_id: str) -> list[SessionEvent]:
        events = schema.session_events
        rows = await self._all(select(events).where(events.c.session_id == session_id).order_by(events.c.id))
        return [from_row(SessionEvent, r, detail=load_json(r["detail"])) for r in rows]

    # the audit log

    async def audit(self, user_id: int | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        await self._insert(
            schema.audit_log, at=schema.now(), user_id=user_id, action=action, target=target, detail=dump_json(detail)
        )

    async def list_audit(self, limit: int = 200) -> list[AuditEntry]:
        """The latest entries, newest first."""
        rows = await self._all(select(schema.audit_log).order_by(schema.audit_log.c.id.desc()).limit(limit))
        return [from_row(AuditEntry, r, detail=load_json(r["detail"])) for r in rows]
