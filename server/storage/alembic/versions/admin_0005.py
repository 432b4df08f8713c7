"""Centre settings an admin edits on /admin (filled in by the admin work).

Written out as a frozen description, like the baseline: later changes to ``schema.py`` never change it.
"""

from __future__ import annotations

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
