"""Alembic migrations: a fresh database gets the baseline, and one made before Alembic is adopted without loss.

``fixtures/pre_alembic.sqlite3`` was made by the last release before Alembic (commit 8a4d2b8): its
``migrations.py`` ran steps 1..7 on an empty file, then two rows went into every table (NULLs, JSON, non-ASCII
text, revoked and live keys), and the file was vacuumed into rollback-journal mode so it is one self-contained file.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from server.cli import main
from server.storage import schema
from server.storage.alembic.versions import baseline_0001
from server.storage.migrations import SchemaError, current, head, migrate, revisions, schema_differences

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_alembic.sqlite3"
# The old step list made the baseline's tables; later revisions add to them.
TABLES = sorted(baseline_0001.TABLES)


def columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as db:
        return {t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in TABLES}


def rows(path: Path, named: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the baseline's tables, in the columns ``named`` (later revisions add columns, never drop)."""
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT {', '.join(named[t])} FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}


def shape(path: Path) -> dict[str, Any]:
    """Tables, columns, keys and indexes as SQLite reports them, in a stable order."""
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {
            t: {
                "columns": sorted(db.execute(f"PRAGMA table_info({t})").fetchall(), key=lambda c: c[1]),
                "foreign_keys": sorted(r[2:5] for r in db.execute(f"PRAGMA foreign_key_list({t})")),
                "indexes": sorted(
                    (r[1], r[2], tuple(c[2] for c in db.execute(f"PRAGMA index_info('{r[1]}')")))
                    for r in db.execute(f"PRAGMA index_list({t})")
                ),
            }
            for t in names
        }


async def test_a_database_made_before_alembic_is_upgraded_in_place(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.sqlite3", tmp_path / "fresh.sqlite3"
    shutil.copy(FIXTURE, old)
    with sqlite3.connect(old) as db:
        assert [v for (v,) in db.execute("SELECT version FROM schema_migrations")] == list(range(1, 8))
    old_columns = columns(old)
    before = rows(old, old_columns)
    assert all(len(before[t]) == 2 for t in TABLES)

    engine = schema.create_engine(f"sqlite+aiosqlite:///{old}")
    try:
        await migrate(engine)
        assert await current(engine) == head()
        assert await schema_differences(engine) == []
        assert await migrate(engine) == []  # adopted once
    finally:
        await engine.dispose()
    assert rows(old, old_columns) == before

    engine = schema.create_engine(f"sqlite+aiosqlite:///{fresh}")
    try:
        assert await migrate(engine) == revisions()
    finally:
        await engine.dispose()
    # The adopted database has exactly the tables a new one gets: the old step list's own table is gone.
    assert shape(old) == shape(fresh)


def ddl(path: Path) -> list[tuple[str, str, str, str | None]]:
    """SQLite's own text of every table and index of the app (Alembic's version table aside), by kind and name.

    Runs of white space count as one space: a column added by ALTER TABLE is written on its neighbour's line.
    """
    with sqlite3.connect(path) as db:
        query = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'"
        found = db.execute(query + " ORDER BY type, name").fetchall()
    return [(kind, name, table, re.sub(r"\s+", " ", sql) if sql else sql) for kind, name, table, sql in found]


async def test_tables_in_code_the_baseline_and_an_adopted_old_database_have_the_same_create_statements(
    tmp_path: Path,
) -> None:
    in_code, fresh, old = tmp_path / "in_code.sqlite3", tmp_path / "fresh.sqlite3", tmp_path / "old.sqlite3"
    shutil.copy(FIXTURE, old)
    engine = schema.create_engine(f"sqlite+aiosqlite:///{in_code}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(schema.metadata.create_all)
    finally:
        await engine.dispose()
    for path in (fresh, old):
        engine = schema.create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate(engine)
        finally:
            await engine.dispose()
    expected = ddl(in_code)
    assert len(expected) > len(TABLES)  # tables and their indexes
    assert ddl(fresh) == expected
    assert ddl(old) == expected


async def test_a_new_database_gets_every_revision_once_and_matches_the_tables_in_code(database_url: str) -> None:
    engine = schema.create_engine(database_url)
    try:
        assert await current(engine) is None
        assert await migrate(engine) == revisions()
        assert await migrate(engine) == []
        assert await schema_differences(engine) == []
    finally:
        await engine.dispose()


async def test_a_database_at_an_earlier_old_step_is_refused_untouched(tmp_path: Path) -> None:
    old = tmp_path / "step6.sqlite3"
    shutil.copy(FIXTURE, old)
    with sqlite3.connect(old) as db:
        db.execute("DELETE FROM schema_migrations WHERE version = 7")
    before, tables_before = rows(old, columns(old)), shape(old)
    engine = schema.create_engine(f"sqlite+aiosqlite:///{old}")
    try:
        with pytest.raises(SchemaError, match="old schema step 6 of 7"):
            await migrate(engine)
        assert await current(engine) is None
    finally:
        await engine.dispose()
    assert rows(old, columns(old)) == before and shape(old) == tables_before


async def test_a_database_with_tables_but_no_version_is_refused(database_url: str) -> None:
    engine = schema.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
            await conn.execute(text("INSERT INTO users (id, name) VALUES (1, 'someone else')"))
        with pytest.raises(SchemaError, match="no schema version"):
            await migrate(engine)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT name FROM users"))).all() == [("someone else",)]
            assert await conn.run_sync(lambda sync: inspect(sync).get_table_names()) == ["users"]
    finally:
        await engine.dispose()


def test_rapport_db_upgrade_and_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(FIXTURE, tmp_path / "rapport.sqlite3")
    assert main(["db", "current", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "none (pre-Alembic schema step 7)"
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"database at revision {head()} (head)"
    assert main(["db", "current", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{head()} (head)"
