"""Webhook endpoints and their delivery queue, as stored (the sender is :mod:`server.webhooks.dispatcher`).

Every event is a ``webhook_deliveries`` row first, one per subscribed endpoint, so a crash loses nothing; each
delivery is sent by a ``webhook`` job keyed by its id (server/storage/jobs.py), so one node at a time sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping

from . import schema
from .base import Repository, from_row
from .jobs import add_jobs
from .records import api_fields


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    description: str | None
    active: bool
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return api_fields(self, "id url events description created_at")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint, as its history shows it (no payload, no secret)."""

    id: int
    event: str
    event_id: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    next_attempt_at: float | None

    def to_json(self) -> dict[str, Any]:
        return api_fields(
            self, "id event event_id state attempts last_status last_error created_at delivered_at next_attempt_at"
        )


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending delivery that is due, with what sending it needs."""

    id: int
    endpoint_id: int
    event: str
    payload: str
    attempts: int
    url: str
    secret: str


WEBHOOK_JOB = "webhook"


def _events_of(text: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    return tuple(e for e in value if isinstance(e, str)) if isinstance(value, list) else ()


def _endpoint(row: RowMapping) -> Endpoint:
    return from_row(Endpoint, row, events=_events_of(row["events"]))


class WebhookStore(Repository):
    # endpoints

    async def create_endpoint(
        self, url: str, secret: str, events: tuple[str, ...], description: str | None
    ) -> Endpoint:
        t = schema.now()
        pk = await self._insert(
            schema.webhook_endpoints,
            url=url,
            secret=secret,
            events=json.dumps(list(events)),
            description=description,
            active=True,
            created_at=t,
        )
        return Endpoint(pk, url, events, description, True, t)

    async def list_endpoints(self) -> list[Endpoint]:
        """The live endpoints (deleted ones are kept for their delivery history, but not listed)."""
        table = schema.webhook_endpoints
        rows = await self._all(select(table).where(table.c.active.is_(True)).order_by(table.c.id))
        return [_endpoint(r) for r in rows]

    async def get_endpoint(self, endpoint_id: int) -> Endpoint | None:
        table = schema.webhook_endpoints
        row = await self._first(select(table).where(table.c.id == endpoint_id, table.c.active.is_(True)))
        return _endpoint(row) if row is not None else None

    async def deactivate_endpoint(self, endpoint_id: int) -> bool:
        """Forget the endpoint's secret and fail its pending deliveries, in one transaction; False if not live."""
        endpoints, deliveries = schema.webhook_endpoints, schema.webhook_deliveries
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(endpoints)
                .where(endpoints.c.id == endpoint_id, endpoints.c.active.is_(True))
                .values(active=False, secret="")
            )
            if result.rowcount != 1:
                return False
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.state == "pending")
                .values(state="failed", next_attempt_at=None, last_error="endpoint deleted")
            )
        return True

    # deliveries

    async def list_deliveries(self, endpoint_id: int, limit: int) -> list[Delivery]:
        """The endpoint's deliveries, newest first."""
        table = schema.webhook_deliveries
        query = select(table).where(table.c.endpoint_id == endpoint_id).order_by(table.c.id.desc()).limit(limit)
        return await self._records(Delivery, query)

    async def queue_event(self, event: str, event_id: str, payload: str, at: float) -> int:
        """One pending delivery per live endpoint subscribed to ``event``, due at ``at``, each with its job (in one
        transaction); returns how many."""
        table, deliveries = schema.webhook_endpoints, schema.webhook_deliveries
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(table.c.id, table.c.events).where(table.c.active.is_(True)))).all()
            targets = [row.id for row in rows if event in _events_of(row.events)]
            ids = []
            for endpoint_id in targets:
                statement = insert(deliveries).values(
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    event=event,
                    payload=payload,
                    state="pending",
                    attempts=0,
                    next_attempt_at=at,
                    created_at=at,
                )
                ids.append((await conn.execute(statement.returning(deliveries.c.id))).scalar_one())
            await add_jobs(conn, WEBHOOK_JOB, [str(i) for i in ids], run_at=at)
        return len(targets)

    async def queue_test(self, endpoint_id: int, event: str, event_id: str, payload: str, at: float) -> int | None:
        """One pending delivery of ``event`` to this live endpoint only, with its job; its id (None: no such
        live endpoint)."""
        table, deliveries = schema.webhook_endpoints, schema.webhook_deliveries
        async with self.engine.begin() as conn:
            live = await conn.execute(select(table.c.id).where(table.c.id == endpoint_id, table.c.active.is_(True)))
            if live.first() is None:
                return None
            statement = insert(deliveries).values(
                endpoint_id=endpoint_id,
                event_id=event_id,
                event=event,
                payload=payload,
                state="pending",
                attempts=0,
                next_attempt_at=at,
                created_at=at,
            )
            delivery_id = int((await conn.execute(statement.returning(deliveries.c.id))).scalar_one())
            await add_jobs(conn, WEBHOOK_JOB, [str(delivery_id)], run_at=at)
        return delivery_id

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        table = schema.webhook_deliveries
        return await self._record(Delivery, select(table).where(table.c.id == delivery_id))

    async def pending_delivery(self, delivery_id: int) -> tuple[DueDelivery, float] | None:
        """The delivery with what sending it needs, and when it is due; None unless pending to a live endpoint."""
        d, e = schema.webhook_deliveries, schema.webhook_endpoints
        query = (
            select(d, e.c.url, e.c.secret)
            .select_from(d.join(e, d.c.endpoint_id == e.c.id))
            .where(d.c.id == delivery_id, d.c.state == "pending", e.c.active.is_(True))
        )
        row = await self._first(query)
        if row is None:
            return None
        return from_row(DueDelivery, row), float(row["next_attempt_at"] or 0.0)

    async def mark_delivered(self, delivery_id: int, *, attempts: int, status: int | None, at: float) -> None:
        """Delivered: last_error keeps the latest failure, if any, for the record."""
        await self._update_pending(
            delivery_id,
            state="delivered",
            attempts=attempts,
            last_status=status,
            delivered_at=at,
            next_attempt_at=None,
        )

    async def mark_attempt_failed(
        self, delivery_id: int, *, attempts: int, status: int | None, error: str, retry_at: float | None
    ) -> None:
        """A failed attempt: pending again until ``retry_at``, or failed for good when it is None."""
        await self._update_pending(
            delivery_id,
            state="failed" if retry_at is None else "pending",
            attempts=attempts,
            last_status=status,
            last_error=error,
            next_attempt_at=retry_at,
        )

    async def _update_pending(self, delivery_id: int, **values: Any) -> None:
        # Only a row still pending: a delivery failed meanwhile (endpoint deleted) stays as it is.
        table = schema.webhook_deliveries
        await self._write(update(table).where(table.c.id == delivery_id, table.c.state == "pending").values(**values))
