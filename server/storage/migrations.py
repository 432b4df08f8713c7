"""Schema migrations: an ordered list of steps, each applied once and recorded.

Add a step at the end of ``MIGRATIONS``; never edit one that has shipped.
Steps receive a synchronous SQLAlchemy connection inside one transaction, and
must tolerate finding their change already made (step 1 creates tables from
the current definitions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from . import schema

log = logging.getLogger(__name__)

Migration = tuple[int, str, Callable[[Connection], None]]


def _initial_schema(conn: Connection) -> None:
    schema.metadata.create_all(
        conn,
        tables=[
            schema.users,
            schema.staff_logins,
            schema.support_sessions,
            schema.chat_messages,
            schema.session_events,
            schema.invites,
        ],
    )


def _emotion_cues(conn: Connection) -> None:
    # Step 1 creates tables from today's definitions, so a fresh database may have these already.
    columns = {c["name"] for c in inspect(conn).get_columns("support_sessions")}
    if "emotion_consent" not in columns:
        conn.execute(text("ALTER TABLE support_sessions ADD COLUMN emotion_consent BOOLEAN"))
    schema.metadata.create_all(conn, tables=[schema.emotion_timeline])


def _recordings(conn: Connection) -> None:
    columns = {c["name"] for c in inspect(conn).get_columns("support_sessions")}
    if "recording_consent" not in columns:
        conn.execute(text("ALTER TABLE support_sessions ADD COLUMN recording_consent BOOLEAN"))
    schema.metadata.create_all(conn, tables=[schema.recordings])


def _add_columns(conn: Connection, table: str, columns: dict[str, str]) -> None:
    existing = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, sql_type in columns.items():
        if name not in existing:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


def _qa_review(conn: Connection) -> None:
    _add_columns(
        conn,
        "support_sessions",
        {
            "customer_ref": "VARCHAR(128)",
            "disposition": "VARCHAR(64)",
            "notes": "TEXT",
            "wrapped_at": "FLOAT",
            "peak_frustration": "FLOAT",
            "flag_count": "INTEGER",
            "legal_hold": "BOOLEAN NOT NULL DEFAULT 0",
            "legal_hold_note": "VARCHAR(200)",
            "erased_at": "FLOAT",
        },
    )
    _add_columns(conn, "recordings", {"epoch": "FLOAT", "progress": "FLOAT"})
    _add_columns(conn, "invites", {"customer_ref": "VARCHAR(128)"})
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_support_sessions_customer_ref ON support_sessions (customer_ref)"))
    schema.metadata.create_all(conn, tables=[schema.scorecards, schema.qa_reviews])


def _intake_routing_api(conn: Connection) -> None:
    _add_columns(conn, "users", {"skills": "TEXT", "languages": "TEXT"})
    _add_columns(
        conn,
        "support_sessions",
        {
            "language": "VARCHAR(16)",
            "contact": "TEXT",
            "context": "TEXT",
            "rating": "INTEGER",
            "rating_comment": "TEXT",
            "rated_at": "FLOAT",
        },
    )
    _add_columns(
        conn, "invites", {"identity": "TEXT", "context": "TEXT", "language": "VARCHAR(16)", "priority": "INTEGER"}
    )
    schema.metadata.create_all(conn, tables=[schema.api_keys, schema.webhook_endpoints, schema.webhook_deliveries])


def _single_use_invites(conn: Connection) -> None:
    _add_columns(conn, "invites", {"id": "VARCHAR(24)", "claimed_at": "FLOAT", "revoked_at": "FLOAT"})
    conn.execute(text("UPDATE invites SET id = 'inv_' || substr(code_hash, 1, 16) WHERE id IS NULL"))
    # An invite that already started a call has been used.
    conn.execute(text("UPDATE invites SET claimed_at = created_at WHERE session_id IS NOT NULL AND claimed_at IS NULL"))
    conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ix_invites_id ON invites (id)"))


MIGRATIONS: list[Migration] = [
    (1, "initial schema", _initial_schema),
    (2, "emotion consent and timeline", _emotion_cues),
    (3, "recordings", _recordings),
    (4, "audit log", lambda conn: schema.metadata.create_all(conn, tables=[schema.audit_log])),
    (5, "wrap-up, QA review, retention and erasure", _qa_review),
    (6, "intake, routing, API keys and webhooks", _intake_routing_api),
    (7, "single-use, revocable invites", _single_use_invites),
]


def _apply(conn: Connection) -> list[int]:
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
    )
    done = {row[0] for row in conn.execute(text("SELECT version FROM schema_migrations"))}
    applied: list[int] = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        step(conn)
        conn.execute(
            text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"),
            {"v": version, "n": name, "t": schema.now()},
        )
        applied.append(version)
    return applied


async def migrate(engine: AsyncEngine) -> list[int]:
    """Bring the schema up to date; returns the versions applied now."""
    async with engine.begin() as conn:
        applied = await conn.run_sync(_apply)
    if applied:
        log.info("database migrated to version %d", applied[-1])
    return applied


def latest_version() -> int:
    return MIGRATIONS[-1][0]
