"""Alembic's environment: runs on the connection ``server.storage.migrations`` hands it (never its own engine)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from server.storage import schema


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema.metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `rapport db upgrade` (server.storage.migrations), not the alembic CLI")
run_migrations(connection)
