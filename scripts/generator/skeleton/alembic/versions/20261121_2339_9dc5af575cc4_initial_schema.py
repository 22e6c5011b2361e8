"""initial schema

Revision ID: 9dc5af575cc4
Revises:
Created: 2026-11-21 23:39:01.863586+00:00
"""

from collections.abc import Sequence

revision: str = "9dc5af575cc4"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The service's first revision: its own tables come in the revisions after it."""


def downgrade() -> None:
    """Nothing to undo."""
