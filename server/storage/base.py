"""What every repository shares: the engine, one-statement reads and writes, and row → record mapping.

A repository is one aggregate's queries (users, sessions, recordings ...) over an engine it is handed; the
helpers here are the select / execute / map boilerplate each query would otherwise repeat.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import CursorResult, Executable, Table, insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    R = TypeVar("R", bound=DataclassInstance)


class Repository:
    """Queries over one shared engine. Reads take a connection, writes a transaction, each for one statement;
    a method that must write several rows atomically opens ``self.engine.begin()`` itself."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _first(self, query: Executable) -> RowMapping | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).mappings().first()

    async def _all(self, query: Executable) -> Sequence[RowMapping]:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).mappings().all()

    async def _record(self, cls: type[R], query: Executable) -> R | None:
        """The query's first row as a ``cls`` record (see :func:`from_row`); None when there is none."""
        row = await self._first(query)
        return from_row(cls, row) if row is not None else None

    async def _records(self, cls: type[R], query: Executable) -> list[R]:
        """Every row of the query as a ``cls`` record (see :func:`from_row`)."""
        return [from_row(cls, row) for row in await self._all(query)]

    async def _scalar(self, query: Executable) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def _write(self, statement: Executable) -> CursorResult[Any]:
        async with self.engine.begin() as conn:
            return await conn.execute(statement)

    async def _insert(self, table: Table, **values: Any) -> int:
        """Insert one row into a table keyed by an integer ``id``; that new id."""
        result = await self._write(insert(table).values(**values))
        return int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0


@cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def from_row(cls: type[R], row: RowMapping, **computed: Any) -> R:
    """A record from the row's columns of the same names; ``computed`` gives the fields that are not plain columns."""
    return cls(**{name: row[name] for name in _field_names(cls) if name not in computed}, **computed)


def dump_json(value: Any) -> str | None:
    """A JSON column's text; an empty value is stored as NULL."""
    return json.dumps(value) if value else None


def load_json(text: str | None) -> Any:
    """A JSON column's value; NULL (or empty text) reads as None."""
    return json.loads(text) if text else None
