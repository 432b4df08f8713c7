"""A staff member's own interface language (filled in by the staff-languages work).

Written out as a frozen description, like the baseline: later changes to ``schema.py`` never change it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A language code from the deployment's languages, or NULL: the staff pages follow the browser.
    op.add_column("users", sa.Column("language", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "language")
