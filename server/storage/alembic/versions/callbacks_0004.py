"""Callbacks and business hours: the ``business_hours`` row and customers' ``callbacks``.

Written out as a frozen description, like the baseline: later changes to ``schema.py`` never change it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "business_hours",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("callback_wait_threshold_s", sa.Integer, nullable=False),
        sa.Column("queues", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    )
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("customer_name", sa.String(200), nullable=True),
        sa.Column("contact", sa.Text, nullable=True),
        sa.Column("window_start", sa.Float, nullable=True),
        sa.Column("window_end", sa.Float, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("started_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("invite_id", sa.String(24), nullable=True),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("origin_session_id", sa.String(40), nullable=True),
    )
    op.create_index("ix_callbacks_due", "callbacks", ["state", "due_at"])
    op.create_index("ix_callbacks_invite", "callbacks", ["invite_id"])
    op.create_index("ix_callbacks_session", "callbacks", ["session_id"])
    op.create_index("ix_callbacks_origin", "callbacks", ["origin_session_id"], unique=True)


def downgrade() -> None:
    op.drop_table("callbacks")
    op.drop_table("business_hours")
