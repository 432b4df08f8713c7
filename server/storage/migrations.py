"""Schema migrations with Alembic: revisions live in ``server/storage/alembic/versions/``.

At start the server (and every ``rapport`` command that opens the database) runs ``upgrade head`` on its own
async engine. A database made before Alembic, by the old step list (a ``schema_migrations`` table), is adopted
in place when it reached that list's last step: its tables are exactly the baseline revision, so it is stamped
at the baseline and upgraded from there. One at an earlier step is refused with a message saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from . import schema

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).with_name("alembic")
BASELINE = "0001"
# The pre-Alembic step list ended at step 7 ("single-use, revocable invites"); its schema is the baseline.
LEGACY_TABLE = "schema_migrations"
LEGACY_LAST_STEP = 7


class SchemaError(RuntimeError):
    """The database cannot be brought up to date automatically."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def revisions() -> list[str]:
    """Every revision, oldest first: what an empty database gets."""
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _legacy_step(conn: Connection) -> int | None:
    tables = set(inspect(conn).get_table_names())
    if LEGACY_TABLE not in tables or "alembic_version" in tables:
        return None
    step = conn.execute(text(f"SELECT max(version) FROM {LEGACY_TABLE}")).scalar()
    return int(step or 0)


def _adopt_legacy(conn: Connection, config: Config) -> None:
    """Stamp a database made by the old step list at the baseline, or refuse if it stopped short of the last step."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables or not tables:
        return
    if LEGACY_TABLE not in tables:
        raise SchemaError(
            f"the database has tables ({', '.join(sorted(tables)[:5])}…) but no schema version: "
            "it was not made by Rapport, or its version table was lost; restore it from a backup"
        )
    step = _legacy_step(conn)
    if step != LEGACY_LAST_STEP:
        raise SchemaError(
            f"the database is at old schema step {step} of {LEGACY_LAST_STEP}: start the last release without "
            "Alembic (before issue 11) once to bring it to that step, then start this one"
        )
    command.stamp(config, BASELINE)
    # The step list is history now; alembic_version records the schema from here on.
    conn.execute(text(f"DROP TABLE {LEGACY_TABLE}"))
    log.info("adopted a pre-Alembic database (step %d) at revision %s", LEGACY_LAST_STEP, BASELINE)


def _upgrade(conn: Connection) -> list[str]:
    config = alembic_config(conn)
    _adopt_legacy(conn, config)
    before = _current(conn)
    command.upgrade(config, "head")
    after = _current(conn)
    if before == after:
        return []
    script = ScriptDirectory.from_config(config)
    # Oldest first: walk_revisions yields newest first, down to (but not including) ``before``.
    applied = [r.revision for r in script.walk_revisions(base=before or "base", head=after or "heads")]
    return [r for r in reversed(applied) if r != before]


# Any fixed number: PostgreSQL's advisory locks are named by integers.
MIGRATION_LOCK_KEY = 7_261_853_001


async def migrate(engine: AsyncEngine) -> list[str]:
    """Bring the schema up to date; returns the revisions applied now, oldest first."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Front doors of a cluster start together: one migrates, the others wait and find nothing to do.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        applied = await conn.run_sync(_upgrade)
    if applied:
        log.info("database migrated to revision %s", applied[-1])
    return applied


async def current(engine: AsyncEngine) -> str | None:
    """The database's revision; None for an empty or pre-Alembic database."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def legacy_step(engine: AsyncEngine) -> int | None:
    """The old step list's last step, for a database made before Alembic and not yet adopted; else None."""

    async with engine.connect() as conn:
        return await conn.run_sync(_legacy_step)


async def schema_differences(engine: AsyncEngine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match ``schema.py``: [] when in step."""

    def compare(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)
