"""Whether the database answers now: the readiness check behind ``/healthz`` (server/http/routes/health.py)."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
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


def database_unreachable(error: BaseException) -> bool:
    """The error says the database cannot be reached (down, restarting, refused), not that a query was wrong."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (sa_exc.InterfaceError, sa_exc.OperationalError)):
        return True
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        # asyncpg raises ConnectionDoesNotExistError and the OS raises ConnectionRefusedError on the socket;
        # PostgreSQL says so itself with SQLSTATE class 08 (connection) or 57P (shutting down, starting up).
        if isinstance(error, ConnectionError) or type(error).__name__.startswith("Connection"):
            return True
        sqlstate = str(getattr(error, "sqlstate", "") or "")
        if sqlstate.startswith(("08", "57P")):
            return True
        # No socket file or nobody listening, raised while the driver connects (not a missing recording).
        if isinstance(error, OSError) and _raised_in_driver(error):
            return True
        # SQLAlchemy keeps the driver's error as ``orig``.
        error = error.__cause__ or error.__context__ or getattr(error, "orig", None)  # type: ignore[assignment]
    return False


def _raised_in_driver(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(("asyncpg", "aiosqlite", "sqlalchemy")):
            return True
        tb = tb.tb_next
    return False
