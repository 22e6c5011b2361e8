"""outbox events: available_at, so held rows stay out of the claim

Revision ID: fec82d17d6d4
Revises: 07a21b591995
Created: 2026-12-01 22:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fec82d17d6d4"  # pragma: allowlist secret
down_revision: str | None = "07a21b591995"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # now() is stable, so PostgreSQL stores it once as the rows' value: no table rewrite.
    op.add_column(
        "outbox_events",
        sa.Column(
            "available_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        if_not_exists=True,  # the index step below commits on its own: a rerun starts here
    )
    # Built beside the traffic: the publishers and the writers keep going meanwhile.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_outbox_events_available_at",
            "outbox_events",
            ["available_at", "id"],
            unique=False,
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_outbox_events_available_at",
            table_name="outbox_events",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_column("outbox_events", "available_at", if_exists=True)
