"""Squawk reads each migration's offline SQL and refuses what would lock a busy table."""

from pathlib import Path

import pytest

from tests.delivery.support import REPO, copy_of_repo, delivery_check

INITIAL = "9dc5af575cc4"
REVISION = '''"""a later change"""

import sqlalchemy as sa
from alembic import op

revision = "c0ffee000001"
down_revision = "{initial}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '2s'")
    op.execute("SET statement_timeout = '5s'")
    {change}


def downgrade() -> None:
    pass
'''


def with_revision(tmp_path: Path, change: str) -> Path:
    root = copy_of_repo(tmp_path, "alembic.ini", "alembic", "compose-dev.yml")
    source = REVISION.format(initial=INITIAL, change=change)
    (root / "alembic" / "versions" / "20261122_1000_c0ffee000001_later.py").write_text(source)
    return root


def test_the_migrations_pass_squawk() -> None:
    status, output = delivery_check(REPO, "migrations")
    assert status == 0, output
    assert "migrations: ok" in output


def test_a_nullable_column_added_with_timeouts_passes(tmp_path: Path) -> None:
    root = with_revision(tmp_path, 'op.add_column("orders", sa.Column("coupon", sa.Text()))')
    status, output = delivery_check(root, "migrations")
    assert status == 0, output


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            'op.add_column("orders", sa.Column("coupon", sa.Text(), nullable=False))',
            "adding-required-field",
        ),
        (
            'op.create_index("ix_orders_note", "orders", ["note"])',
            "require-concurrent-index-creation",
        ),
    ],
    ids=["not-null-without-default", "index-on-an-existing-table"],
)
def test_a_migration_that_would_lock_a_busy_table_fails(
    tmp_path: Path, change: str, rule: str
) -> None:
    status, output = delivery_check(with_revision(tmp_path, change), "migrations")
    assert status == 1
    assert "20261122_1000_c0ffee000001_later.py.sql:" in output
    assert rule in output
