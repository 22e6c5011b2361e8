"""Migrations: they round-trip, and the models never drift from them unnoticed."""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, MetaData, String, inspect
from sqlalchemy.ext.asyncio import create_async_engine

import orders.models  # noqa: F401 - registers the tables
from core.database import Base, ensure_database
from orders.settings import OrdersSettings
from tests.support import drop_database


@pytest.fixture(scope="module")
def scratch(settings: OrdersSettings) -> Iterator[OrdersSettings]:
    """A database of its own, so downgrades never touch the one other tests use."""
    database = settings.database.model_copy(update={"name": f"orders_mig_{uuid.uuid4().hex[:8]}"})
    scratch = settings.model_copy(update={"database": database})
    asyncio.run(ensure_database(database))
    yield scratch
    drop_database(scratch)


def alembic(settings: OrdersSettings) -> Config:
    config = Config("alembic.ini")
    config.attributes["url"] = settings.database.url()
    return config


def inspect_database(settings: OrdersSettings, check: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(settings.database.url())
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(check)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def drift(metadata: MetaData) -> Any:
    def compare(connection: Connection) -> Any:
        options = {"compare_type": True, "compare_server_default": True}
        return compare_metadata(MigrationContext.configure(connection, opts=options), metadata)

    return compare


def test_upgrade_downgrade_upgrade_round_trips(scratch: OrdersSettings) -> None:
    command.upgrade(alembic(scratch), "head")
    assert inspect_database(scratch, tables) == set(Base.metadata.tables)
    command.downgrade(alembic(scratch), "base")
    assert inspect_database(scratch, tables) == set()
    command.upgrade(alembic(scratch), "head")
    assert inspect_database(scratch, tables) == set(Base.metadata.tables)


def test_models_match_the_migrations(scratch: OrdersSettings) -> None:
    command.upgrade(alembic(scratch), "head")
    assert inspect_database(scratch, drift(Base.metadata)) == []


def test_a_column_added_without_a_migration_is_drift(scratch: OrdersSettings) -> None:
    command.upgrade(alembic(scratch), "head")
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    # A core table: every service has it, with or without the example orders.
    changed.tables["idempotency_keys"].append_column(Column("coupon_code", String(32)))
    differences = inspect_database(scratch, drift(changed))
    assert [(d[0], d[2], d[3].name) for d in differences] == [
        ("add_column", "idempotency_keys", "coupon_code")
    ]


def test_every_revision_file_is_dated() -> None:
    for script in ScriptDirectory.from_config(Config("alembic.ini")).walk_revisions():
        assert script.path.rsplit("/", 1)[-1][:8].isdigit(), script.path
