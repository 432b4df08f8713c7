"""Business hours (one row) and customers' callback requests: made, listed for reps, started once, finished."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import schema
from .base import Repository, dump_json, from_row, load_json
from .records import Callback

OPEN_STATES = ("requested", "started")
CLOSED_STATES = ("completed", "failed", "cancelled")


def new_callback_id() -> str:
    # 128 random bits: the id is in links and webhooks and must not be guessable.
    return "cb_" + secrets.token_urlsafe(16)


def _callback(row: Any) -> Callback:
    return from_row(Callback, row, contact=load_json(row["contact"]))


class CallbackRepository(Repository):
    # business hours

    async def get_business_hours(self) -> dict[str, Any] | None:
        """The stored hours as the API's document; None when an admin never set them (always open)."""
        t = schema.business_hours
        row = await self._first(select(t).where(t.c.id == 1))
        if row is None:
            return None
        return {
            "timezone": row["timezone"],
            "callback_wait_threshold_s": row["callback_wait_threshold_s"],
            "queues": json.loads(row["queues"]),
        }

    async def save_business_hours(self, document: dict[str, Any], user_id: int | None) -> None:
        """Replace the hours (a document :func:`server.calls.hours.parse_hours` accepted)."""
        t = schema.business_hours
        values = {
            "timezone": document["timezone"],
            "callback_wait_threshold_s": document["callback_wait_threshold_s"],
            "queues": json.dumps(document["queues"]),
            "updated_at": schema.now(),
            "updated_by": user_id,
        }
        async with self.engine.begin() as conn:
            await conn.execute(delete(t))
            await conn.execute(insert(t).values(id=1, **values))

    # callbacks

    async def create_callback(
        self,
        *,
        reason: str | None,
        language: str | None,
        customer_name: str | None,
        contact: dict[str, str],
        window: tuple[float, float] | None,
        due_at: float,
        origin_session_id: str | None = None,
    ) -> Callback | None:
        """The new callback; None when its call has one already (requests that raced: one wins)."""
        t = schema.now()
        values: dict[str, Any] = {
            "id": new_callback_id(),
            "reason": reason,
            "language": language,
            "customer_name": customer_name,
            "window_start": window[0] if window else None,
            "window_end": window[1] if window else None,
            "state": "requested",
            "created_at": t,
            "due_at": due_at,
            "started_at": None,
            "started_by": None,
            "ended_at": None,
            "invite_id": None,
            "session_id": None,
            "origin_session_id": origin_session_id,
        }
        try:
            await self._write(insert(schema.callbacks).values(**values, contact=dump_json(contact)))
        except IntegrityError:
            return None
        return Callback(**values, contact=contact)

    async def open_callback_for_contact(self, contact: dict[str, str]) -> bool:
        """Whether a callback to this phone number or address is still open (requested or started)."""
        c = schema.callbacks
        rows = await self._all(select(c.c.contact).where(c.c.state.in_(OPEN_STATES)))
        wanted = {(k, v.lower()) for k, v in contact.items()}
        for row in rows:
            have = load_json(row["contact"]) or {}
            if wanted & {(k, str(v).lower()) for k, v in have.items()}:
                return True
        return False

    async def callback_for_origin(self, session_id: str) -> Callback | None:
        c = schema.callbacks
        return await self._record_cb(select(c).where(c.c.origin_session_id == session_id))

    async def get_callback(self, callback_id: str) -> Callback | None:
        c = schema.callbacks
        return await self._record_cb(select(c).where(c.c.id == callback_id))

    async def _record_cb(self, query: Any) -> Callback | None:
        row = await self._first(query)
        return _callback(row) if row is not None else None

    async def list_callbacks(self, states: tuple[str, ...], limit: int = 200) -> list[Callback]:
        """Callbacks in ``states``, due first."""
        c = schema.callbacks
        query = select(c).where(c.c.state.in_(states)).order_by(c.c.due_at, c.c.created_at).limit(limit)
        return [_callback(row) for row in await self._all(query)]

    async def start_callback(self, callback_id: str, user_id: int) -> bool:
        """requested → started by this rep; True for exactly one caller however many race."""
        c = schema.callbacks
        result = await self._write(
            update(c)
            .where(c.c.id == callback_id, c.c.state == "requested")
            .values(state="started", started_at=schema.now(), started_by=user_id)
        )
        return result.rowcount == 1

    async def set_callback_invite(self, callback_id: str, invite_id: str) -> None:
        c = schema.callbacks
        await self._write(update(c).where(c.c.id == callback_id).values(invite_id=invite_id))

    async def callback_for_invite(self, invite_id: str) -> Callback | None:
        c = schema.callbacks
        return await self._record_cb(select(c).where(c.c.invite_id == invite_id, c.c.state == "started"))

    async def link_callback_session(self, callback_id: str, session_id: str) -> None:
        c = schema.callbacks
        await self._write(update(c).where(c.c.id == callback_id).values(session_id=session_id))

    async def finish_callback(self, session_id: str, state: str) -> Callback | None:
        """The started callback whose call this was, now ``state`` (completed or failed); None if none."""
        c = schema.callbacks
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(c)
                .where(c.c.session_id == session_id, c.c.state == "started")
                .values(state=state, ended_at=schema.now())
            )
            if result.rowcount != 1:
                return None
            row = (await conn.execute(select(c).where(c.c.session_id == session_id))).mappings().first()
        return _callback(row) if row is not None else None

    async def cancel_callback(self, callback_id: str) -> bool:
        c = schema.callbacks
        result = await self._write(
            update(c)
            .where(c.c.id == callback_id, c.c.state.in_(OPEN_STATES))
            .values(state="cancelled", ended_at=schema.now())
        )
        return result.rowcount == 1

    async def report_callbacks(self, created_from: float, created_to: float) -> list[Callback]:
        """Callbacks asked for in [created_from, created_to), for the supervisors' reports."""
        c = schema.callbacks
        query = select(c).where(c.c.created_at >= created_from, c.c.created_at < created_to)
        return [_callback(row) for row in await self._all(query)]

    async def forget_callback_contacts(self, *, before: float) -> int:
        """Retention: blank the name and contact of callbacks closed, or asked for, before ``before`` (an open one
        is cancelled: it can no longer be made); how many."""
        c = schema.callbacks
        old = or_(c.c.ended_at < before, c.c.created_at < before)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(c).where(old, c.c.state.in_(OPEN_STATES)).values(state="cancelled", ended_at=schema.now())
            )
            result = await conn.execute(
                update(c)
                .where(old, or_(c.c.contact.is_not(None), c.c.customer_name.is_not(None)))
                .values(contact=None, customer_name=None)
            )
        return result.rowcount

    async def erase_callbacks_of_session(self, session_id: str) -> int:
        """Erasure: blank the name and contact of callbacks asked for from this call or made by it."""
        c = schema.callbacks
        result = await self._write(
            update(c)
            .where(or_(c.c.session_id == session_id, c.c.origin_session_id == session_id))
            .values(contact=None, customer_name=None)
        )
        return result.rowcount
