"""An outage is told apart from a bug: only the first becomes 503 "unavailable" (server/http/security.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from server.storage.health import database_unreachable


class CannotConnectNowError(Exception):
    sqlstate = "57P03"  # as asyncpg raises it while PostgreSQL starts or stops


class UniqueViolationError(Exception):
    sqlstate = "23505"


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_the_database_shutting_down_or_dropping_the_connection_is_an_outage() -> None:
    assert database_unreachable(
        sa_exc.DBAPIError("SELECT 1", None, CannotConnectNowError(), connection_invalidated=False)
    )
    assert database_unreachable(sa_exc.OperationalError("SELECT 1", None, Exception("gone")))
    assert database_unreachable(sa_exc.DBAPIError("SELECT 1", None, Exception("x"), connection_invalidated=True))
    assert database_unreachable(ConnectionRefusedError())


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", None, UniqueViolationError()),
        FileNotFoundError(2, "No such file or directory"),  # a missing recording, raised here, not in the driver
        ValueError("bad input"),
    ],
)
def test_a_wrong_query_or_a_missing_file_is_not_an_outage(error: BaseException) -> None:
    assert not database_unreachable(raised(error))
