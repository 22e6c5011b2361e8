"""Alembic environment: async engine from the service settings, logging through core."""

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import core.idempotency  # registers the idempotency keys
import core.outbox.tables  # noqa: F401 - registers the outbox and inbox tables
import orders.models  # noqa: F401 - registers the service's tables
from core.database import Base
from core.logging import configure_logging
from orders.settings import OrdersSettings

settings = OrdersSettings()
# A caller (the migrate command, the tests) may pass the URL of another database.
url = context.config.attributes.get("url") or settings.database.url()
if context.config.attributes.get("configure_logging", True):
    configure_logging(settings)


# Every migration gives up rather than queue behind live traffic for long, or run forever.
TIMEOUTS = ("SET lock_timeout = '5s'", "SET statement_timeout = '5min'")


def run_offline() -> None:
    context.configure(
        url=url,
        literal_binds=True,
        target_metadata=Base.metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        for statement in TIMEOUTS:
            context.execute(statement)
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        for statement in TIMEOUTS:
            context.execute(statement)
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
