"""Database engine and schema. SQLite (WAL) by default; any SQLAlchemy async URL works."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import SchemaItem

from .files import precreate_private

metadata = MetaData()

# Column kinds that recur across tables, each defined once.
SESSION_ID = String(40)
SHA256_HEX = String(64)
# What an invite carries into the session it opens, so both tables take the same values.
CUSTOMER_NAME = String(200)
REASON_CODE = String(64)
CUSTOMER_REF = String(128)
LANGUAGE_CODE = String(16)


def _id_column() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _session_column(**extra: Any) -> Column[str]:
    """The support session a row belongs to."""
    return Column("session_id", SESSION_ID, ForeignKey("support_sessions.id"), nullable=False, **extra)


def _user_column(name: str, *, nullable: bool = True) -> Column[int]:
    """A staff user: who did it, or whose it is."""
    return Column(name, Integer, ForeignKey("users.id"), nullable=nullable)


def _time_column(name: str, *, nullable: bool = True) -> Column[float]:
    """A moment, as Unix seconds."""
    return Column(name, Float, nullable=nullable)


def _created_at() -> Column[float]:
    return _time_column("created_at", nullable=False)


def _session_rows_table(name: str, *columns: SchemaItem) -> Table:
    """A table of rows that belong to a support session: an integer id, the session, and an index to find them by it."""
    return Table(name, metadata, _id_column(), _session_column(), *columns, Index(f"ix_{name}_session", "session_id"))


users = Table(
    "users",
    metadata,
    _id_column(),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    _created_at(),
    # Routing: JSON lists of reason codes and language codes; empty means "any".
    Column("skills", Text, nullable=True),
    Column("languages", Text, nullable=True),
    # The staff pages' language (/api/v1/me/language); NULL: the pages follow the browser's languages.
    Column("language", String(16), nullable=True),
)

staff_logins = Table(
    "staff_logins",
    metadata,
    # SHA-256 of the cookie value: a stolen database does not yield live cookies.
    Column("token_hash", SHA256_HEX, primary_key=True),
    _user_column("user_id", nullable=False),
    Column("csrf_token", String(64), nullable=False),
    _created_at(),
    _time_column("expires_at", nullable=False),
    _time_column("revoked_at"),
)

support_sessions = Table(
    "support_sessions",
    metadata,
    Column("id", SESSION_ID, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reason", REASON_CODE, nullable=True),
    Column("customer_name", CUSTOMER_NAME, nullable=True),
    Column("device", String(200), nullable=True),
    Column("token_hash", SHA256_HEX, nullable=False, unique=True),
    _time_column("token_expires_at", nullable=False),
    Column("priority", Integer, nullable=False, default=0),
    _user_column("rep_id"),
    _created_at(),
    _time_column("queued_at", nullable=False),
    _time_column("answered_at"),
    _time_column("ended_at"),
    Column("ended_by", String(16), nullable=True),
    Column("end_reason", String(64), nullable=True),
    # None: not asked (old sessions); the customer's answer to the emotion-cue notice otherwise.
    Column("emotion_consent", Boolean, nullable=True),
    # None: recording off by policy; otherwise whether this call may be recorded.
    Column("recording_consent", Boolean, nullable=True),
    # Who the customer is to the business (from a signed invite): the key for erasure.
    Column("customer_ref", CUSTOMER_REF, nullable=True),
    # Wrap-up by the rep.
    Column("disposition", String(64), nullable=True),
    Column("notes", Text, nullable=True),
    _time_column("wrapped_at"),
    # The customer's emotion summary, written when the call ends (QA filters on it).
    Column("peak_frustration", Float, nullable=True),
    Column("flag_count", Integer, nullable=True),
    Column("legal_hold", Boolean, nullable=False, default=False),
    Column("legal_hold_note", String(200), nullable=True),
    _time_column("erased_at"),
    # Intake and identity (JSON objects), the customer's language, and the post-call rating.
    Column("language", LANGUAGE_CODE, nullable=True),
    Column("contact", Text, nullable=True),
    Column("context", Text, nullable=True),
    Column("rating", Integer, nullable=True),
    Column("rating_comment", Text, nullable=True),
    _time_column("rated_at"),
    Index("ix_support_sessions_state", "state"),
    Index("ix_support_sessions_customer_ref", "customer_ref"),
)

chat_messages = _session_rows_table(
    "chat_messages",
    Column("sender", String(16), nullable=False),
    Column("sender_name", String(200), nullable=True),
    Column("text", Text, nullable=False),
    _created_at(),
)

session_events = _session_rows_table(
    "session_events",
    _time_column("at", nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=True),
)

emotion_timeline = Table(
    "emotion_timeline",
    metadata,
    # One row per second of the customer's video: scores only, never images.
    _session_column(primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("samples", Integer, nullable=False),
    Column("face_present", Boolean, nullable=False),
    Column("mean_frustration", Float, nullable=True),
    Column("max_frustration", Float, nullable=True),
    Column("dominant", String(16), nullable=True),
    Column("flag", Boolean, nullable=False),
)

recordings = _session_rows_table(
    "recordings",
    Column("participant", String(16), nullable=False),
    Column("kind", String(8), nullable=False),
    # Relative to the recordings folder: files are looked up by id, never by a path from a request.
    Column("path", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("size", Integer, nullable=True),
    Column("sha256", SHA256_HEX, nullable=True),
    _time_column("started_at", nullable=False),
    _time_column("ended_at"),
    Column("error", String(200), nullable=True),
    # Wall-clock time of the track's timestamp 0: lines the tracks, chat and emotion timeline up.
    _time_column("epoch"),
    # The composed QA file's progress, 0..1.
    Column("progress", Float, nullable=True),
)

session_files = Table(
    "session_files",
    metadata,
    # Photos and files sent in a call's chat, and the rep's snapshots of the customer's camera. The id is random
    # (URLs name it), the bytes live under the recordings folder at ``path`` and are looked up by id only.
    Column("id", String(40), primary_key=True),
    _session_column(),
    Column("sender", String(16), nullable=False),
    _user_column("sender_user_id"),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("path", String(300), nullable=False),
    Column("sha256", SHA256_HEX, nullable=False),
    _created_at(),
    Index("ix_session_files_session", "session_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id_column(),
    _time_column("at", nullable=False),
    _user_column("user_id"),
    Column("action", String(32), nullable=False),
    Column("target", String(80), nullable=True),
    Column("detail", Text, nullable=True),
)

invites = Table(
    "invites",
    metadata,
    Column("code_hash", SHA256_HEX, primary_key=True),
    Column("customer_name", CUSTOMER_NAME, nullable=True),
    Column("reason", REASON_CODE, nullable=True),
    _user_column("created_by"),
    _created_at(),
    _time_column("expires_at", nullable=False),
    Column("session_id", SESSION_ID, nullable=True),
    Column("customer_ref", CUSTOMER_REF, nullable=True),
    # Identified customers: who they are and why (JSON), as the calling system said.
    Column("identity", Text, nullable=True),
    Column("context", Text, nullable=True),
    Column("language", LANGUAGE_CODE, nullable=True),
    Column("priority", Integer, nullable=True),
    # The invite's public id (inv_...), for revoking it; derived from code_hash, which it cannot be turned back into.
    Column("id", String(24), nullable=True, default=lambda ctx: invite_id(ctx.get_current_parameters()["code_hash"])),
    # Single use: set once, by the one redeem that wins; revoked links open nothing.
    _time_column("claimed_at"),
    _time_column("revoked_at"),
    Index("ix_invites_id", "id", unique=True),
)


def invite_id(code_hash: str) -> str:
    return "inv_" + code_hash[:16]


business_hours = Table(
    "business_hours",
    metadata,
    # One row (id 1): the centre's time zone, the wait past which a callback is offered, and each queue's
    # weekly hours and holidays as the API's JSON (server/calls/hours.py checks it). No row: always open.
    _id_column(),
    Column("timezone", String(64), nullable=False),
    Column("callback_wait_threshold_s", Integer, nullable=False),
    Column("queues", Text, nullable=False),
    _time_column("updated_at", nullable=False),
    _user_column("updated_by"),
)

callbacks = Table(
    "callbacks",
    metadata,
    # A customer's request to be called back. The id is random (cb_..., it is in URLs and webhooks).
    Column("id", String(40), primary_key=True),
    Column("reason", REASON_CODE, nullable=True),
    Column("language", LANGUAGE_CODE, nullable=True),
    Column("customer_name", CUSTOMER_NAME, nullable=True),
    # Phone and/or e-mail (JSON); blanked by erasure and retention.
    Column("contact", Text, nullable=True),
    _time_column("window_start"),
    _time_column("window_end"),
    # requested → started → completed, or failed / cancelled.
    Column("state", String(16), nullable=False),
    _created_at(),
    _time_column("due_at", nullable=False),
    _time_column("started_at"),
    _user_column("started_by"),
    _time_column("ended_at"),
    # The invite made when a rep started it (inv_...), the call that invite opened, and the call it came from.
    Column("invite_id", String(24), nullable=True),
    Column("session_id", SESSION_ID, nullable=True),
    Column("origin_session_id", SESSION_ID, nullable=True),
    Index("ix_callbacks_due", "state", "due_at"),
    Index("ix_callbacks_invite", "invite_id"),
    Index("ix_callbacks_session", "session_id"),
    # One callback per call, however many requests race (NULLs, callbacks with no call, are not compared).
    Index("ix_callbacks_origin", "origin_session_id", unique=True),
)


api_keys = Table(
    "api_keys",
    metadata,
    _id_column(),
    Column("name", String(100), nullable=False),
    # The first characters, shown in lists so a key can be recognised; the key itself is stored hashed.
    Column("prefix", String(16), nullable=False),
    Column("key_hash", SHA256_HEX, nullable=False, unique=True),
    Column("scopes", Text, nullable=False),
    _created_at(),
    _time_column("revoked_at"),
    _time_column("last_used_at"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    _id_column(),
    Column("url", String(500), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("events", Text, nullable=False),
    Column("description", String(200), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    _created_at(),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    _id_column(),
    Column("endpoint_id", Integer, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event", String(40), nullable=False),
    Column("payload", Text, nullable=False),
    # pending → delivered, or failed after the last attempt.
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    _time_column("next_attempt_at"),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(300), nullable=True),
    _created_at(),
    _time_column("delivered_at"),
    Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
)

scorecards = Table(
    "scorecards",
    metadata,
    # Versions: editing the rubric adds a row, so earlier reviews keep the rubric they were scored on.
    _id_column(),
    Column("criteria", Text, nullable=False),
    _created_at(),
    _user_column("created_by"),
)

qa_reviews = _session_rows_table(
    "qa_reviews",
    _user_column("reviewer_id", nullable=False),
    Column("scorecard_id", Integer, ForeignKey("scorecards.id"), nullable=False),
    Column("answers", Text, nullable=False),
    Column("comments", Text, nullable=True),
    Column("score", Float, nullable=False),
    _created_at(),
)

jobs = Table(
    "jobs",
    metadata,
    # Background work any node may run (server/storage/jobs.py): one row per kind and key, claimed by one node.
    _id_column(),
    Column("kind", String(32), nullable=False),
    Column("key", String(120), nullable=False),
    # queued → running (claimed, under a lease) → done, or failed after its last attempt.
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    _time_column("run_at", nullable=False),
    Column("claimed_by", String(120), nullable=True),
    _time_column("lease_until"),
    # Enqueued again while running: queued once more when this run ends.
    Column("again", Boolean, nullable=False),
    Column("last_error", String(300), nullable=True),
    _created_at(),
    _time_column("finished_at"),
    Index("ix_jobs_kind_key", "kind", "key", unique=True),
    Index("ix_jobs_due", "kind", "state", "run_at"),
)

centre_settings = Table(
    "centre_settings",
    metadata,
    # An admin's override of one section of the configured defaults (server/calls/centre_settings.py):
    # dispositions, reasons, help_articles, recording, emotion. No row: the configured default.
    Column("section", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    # Bumped on every save, so a front door polling the table sees a change without comparing values.
    Column("version", Integer, nullable=False),
    _time_column("updated_at", nullable=False),
    _user_column("updated_by"),
)


def now() -> float:
    return time.time()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return None if parsed.database.startswith("file:") else Path(parsed.database)


# The database handle, named for code outside server/storage/ (which never imports SQLAlchemy itself).
Engine: TypeAlias = AsyncEngine


def create_engine(url: str) -> AsyncEngine:
    path = sqlite_file(url)
    if path is not None and path.parent.is_dir():
        # SQLite makes its -wal and -shm files with the database file's mode: create that one 0600.
        precreate_private(path)
    engine = create_async_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: session and chat rows must survive a power cut, not only a crash.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    return engine
