"""Whether the database answers now: the readiness check behind ``/healthz`` (server/http/routes/health.py)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def database_answers(engine: AsyncEngine) -> None:
    """One trivial query on a pooled connection; raises whatever the driver raises when the database is gone.

    No timeout here: the caller bounds it (a connection attempt to a vanished host could wait for the OS's).
    A failure on a connection PostgreSQL dropped while it restarted invalidates the pool (SQLAlchemy's disconnect
    handling), so the next check and the next request connect afresh.
    """
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
