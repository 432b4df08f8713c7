"""Files and snapshots: attachments of a session (filled in by the files-in-chat work).

Written out as a frozen description, like the baseline: later changes to ``schema.py`` never change it.
"""

from __future__ import annotations

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
