"""Baseline: the schema the pre-Alembic step list reached at its last step (7, "single-use, revocable invites").

Written out here as a frozen description (not ``metadata.create_all``), so later changes to ``schema.py`` never
change it. It gives exactly the ``CREATE`` statements that step list left in the database, so a database made by
it is stamped at this revision instead of running it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Every table, in creation order (each after the tables its foreign keys name), as one line per column:
#   name type [pk] [null] [unique] [-> table.column]
# type is int, float (times are Unix seconds), bool, text or str(length); a column is NOT NULL unless marked
# null, and "-> table.column" (always last) makes it a foreign key. A line "index name column,... [unique]"
# adds an index.
TABLES: dict[str, str] = {
    "api_keys": """
        id int pk
        name str(100)
        prefix str(16)
        key_hash str(64) unique
        scopes text
        created_at float
        revoked_at float null
        last_used_at float null
    """,
    "users": """
        id int pk
        username str(64) unique
        display_name str(128)
        role str(16)
        password_hash str(256)
        active bool
        created_at float
        skills text null
        languages text null
    """,
    "webhook_endpoints": """
        id int pk
        url str(500)
        secret str(128)
        events text
        description str(200) null
        active bool
        created_at float
    """,
    "audit_log": """
        id int pk
        at float
        user_id int null -> users.id
        action str(32)
        target str(80) null
        detail text null
    """,
    "invites": """
        code_hash str(64) pk
        customer_name str(200) null
        reason str(64) null
        created_by int null -> users.id
        created_at float
        expires_at float
        session_id str(40) null
        customer_ref str(128) null
        identity text null
        context text null
        language str(16) null
        priority int null
        id str(24) null
        claimed_at float null
        revoked_at float null
        index ix_invites_id id unique
    """,
    "scorecards": """
        id int pk
        criteria text
        created_at float
        created_by int null -> users.id
    """,
    "staff_logins": """
        token_hash str(64) pk
        user_id int -> users.id
        csrf_token str(64)
        created_at float
        expires_at float
        revoked_at float null
    """,
    "support_sessions": """
        id str(40) pk
        state str(16)
        reason str(64) null
        customer_name str(200) null
        device str(200) null
        token_hash str(64) unique
        token_expires_at float
        priority int
        rep_id int null -> users.id
        created_at float
        queued_at float
        answered_at float null
        ended_at float null
        ended_by str(16) null
        end_reason str(64) null
        emotion_consent bool null
        recording_consent bool null
        customer_ref str(128) null
        disposition str(64) null
        notes text null
        wrapped_at float null
        peak_frustration float null
        flag_count int null
        legal_hold bool
        legal_hold_note str(200) null
        erased_at float null
        language str(16) null
        contact text null
        context text null
        rating int null
        rating_comment text null
        rated_at float null
        index ix_support_sessions_customer_ref customer_ref
        index ix_support_sessions_state state
    """,
    "webhook_deliveries": """
        id int pk
        endpoint_id int -> webhook_endpoints.id
        event_id str(40)
        event str(40)
        payload text
        state str(16)
        attempts int
        next_attempt_at float null
        last_status int null
        last_error str(300) null
        created_at float
        delivered_at float null
        index ix_webhook_deliveries_due state,next_attempt_at
    """,
    "chat_messages": """
        id int pk
        session_id str(40) -> support_sessions.id
        sender str(16)
        sender_name str(200) null
        text text
        created_at float
        index ix_chat_messages_session session_id
    """,
    "emotion_timeline": """
        session_id str(40) pk -> support_sessions.id
        second int pk
        samples int
        face_present bool
        mean_frustration float null
        max_frustration float null
        dominant str(16) null
        flag bool
    """,
    "qa_reviews": """
        id int pk
        session_id str(40) -> support_sessions.id
        reviewer_id int -> users.id
        scorecard_id int -> scorecards.id
        answers text
        comments text null
        score float
        created_at float
        index ix_qa_reviews_session session_id
    """,
    "recordings": """
        id int pk
        session_id str(40) -> support_sessions.id
        participant str(16)
        kind str(8)
        path str(300)
        state str(16)
        size int null
        sha256 str(64) null
        started_at float
        ended_at float null
        error str(200) null
        epoch float null
        progress float null
        index ix_recordings_session session_id
    """,
    "session_events": """
        id int pk
        session_id str(40) -> support_sessions.id
        at float
        kind str(32)
        detail text null
        index ix_session_events_session session_id
    """,
}

TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "int": sa.Integer,
    "float": sa.Float,
    "bool": sa.Boolean,
    "text": sa.Text,
}
STRING = re.compile(r"str\((\d+)\)")


def _column(name: str, kind: str, *flags: str) -> sa.Column[Any]:
    length = STRING.fullmatch(kind)
    type_ = sa.String(int(length[1])) if length else TYPES[kind]()
    # Foreign keys and unique on the column, as schema.py has them: CREATE TABLE then lists its constraints in the
    # same order as ``metadata.create_all`` (and the old step list) wrote them.
    references = [sa.ForeignKey(flags[-1])] if "->" in flags else []
    return sa.Column(
        name, type_, *references, primary_key="pk" in flags, nullable="null" in flags, unique="unique" in flags
    )


def upgrade() -> None:
    for table, description in TABLES.items():
        lines = [line.split() for line in description.strip().splitlines()]
        op.create_table(table, *(_column(*words) for words in lines if words[0] != "index"))
        for _, name, columns, *flags in (words for words in lines if words[0] == "index"):
            op.create_index(name, table, columns.split(","), unique="unique" in flags)


def downgrade() -> None:
    # Children before the tables they refer to; a table's indexes go with it.
    for table in reversed(TABLES):
        op.drop_table(table)
