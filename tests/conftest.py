"""Test fixtures: a database created and migrated once per run, emptied after every test."""

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import Base, build_engine, build_session_factory
from core.outbox.writer import OutboxWriter
from core.settings import Environment
from orders.cli import migrate
from orders.events import order_events
from orders.main import create_app
from orders.settings import OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork
from tests.support import connect, drop_database, serve_in_process

TABLES = tuple(Base.metadata.tables)


@pytest.fixture(scope="session")
def settings() -> OrdersSettings:
    """Settings for a database of this run's own, on the server the environment names."""
    name = f"orders_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base = OrdersSettings(environment=Environment.TEST)
    database = base.database.model_copy(update={"name": name, "pool_size": 5})
    return base.model_copy(update={"database": database})


@pytest.fixture(scope="session")
def migrated(settings: OrdersSettings) -> Iterator[OrdersSettings]:
    migrate(settings)
    yield settings
    drop_database(settings)


@pytest.fixture
async def database(migrated: OrdersSettings) -> AsyncIterator[OrdersSettings]:
    """The migrated test database; every table is emptied when the test ends."""
    yield migrated
    connection = await connect(migrated)
    try:
        await connection.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    finally:
        await connection.close()


@pytest.fixture
async def engine(database: OrdersSettings) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(database.database)
    yield engine
    await engine.dispose()


@pytest.fixture
def outbox(settings: OrdersSettings) -> OutboxWriter:
    return OutboxWriter(order_events(settings.events.type_prefix), settings.events)


@pytest.fixture
def new_uow(engine: AsyncEngine, outbox: OutboxWriter) -> Callable[[], OrdersUnitOfWork]:
    """Units of work on the test database, as the app builds them."""
    sessions = build_session_factory(engine)
    return lambda: OrdersUnitOfWork(sessions, outbox)


@pytest.fixture
def app(database: OrdersSettings) -> FastAPI:
    return create_app(database)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(app) as client:
        yield client
