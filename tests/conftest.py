"""Test fixtures: a database created and migrated once per run, emptied after every test."""

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import Base, build_engine, build_session_factory
from core.metrics import OutboxMetrics
from core.outbox.broker import MessageBroker, RedisStreamsBroker
from core.outbox.publisher import OutboxPublisher
from core.outbox.writer import OutboxWriter
from core.settings import Environment
from orders.cli import migrate
from orders.events import published_events
from orders.main import create_app
from orders.settings import OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork
from tests.brokers import BrokerHarness, NatsHarness, RedisHarness
from tests.support import NatsServer, RedisServer, connect, drop_database, serve_in_process

type NewPublisher = Callable[..., OutboxPublisher]
TABLES = tuple(Base.metadata.tables)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this run's own: tests never touch the shared one."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS JetStream of this run's own."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer, nats_server: NatsServer) -> OrdersSettings:
    """A database of this run's own on the configured server, this run's Redis and NATS."""
    name = f"orders_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    base = OrdersSettings(environment=Environment.TEST)
    database = base.database.model_copy(update={"name": name, "pool_size": 5})
    redis = base.redis.model_copy(update={"url": SecretStr(redis_server.url)})
    outbox = base.outbox.model_copy(update={"metrics_port": 0})
    consumer = base.consumer.model_copy(update={"metrics_port": 0})
    broker = base.broker.model_copy(update={"nats_url": SecretStr(nats_server.url)})
    return base.model_copy(
        update={
            "database": database,
            "redis": redis,
            "outbox": outbox,
            "consumer": consumer,
            "broker": broker,
        }
    )


@pytest.fixture(scope="session")
def migrated(settings: OrdersSettings) -> Iterator[OrdersSettings]:
    migrate(settings)
    yield settings
    drop_database(settings)


async def empty(settings: OrdersSettings) -> None:
    """Every table and Redis emptied: what one test wrote is never the next one's data."""
    connection = await connect(settings)
    try:
        await connection.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    finally:
        await connection.close()
    async with Redis.from_url(settings.redis.url.get_secret_value()) as redis:
        await redis.flushall()


@pytest.fixture
async def database(migrated: OrdersSettings) -> AsyncIterator[OrdersSettings]:
    """The migrated test database and Redis; both are emptied when the test ends."""
    yield migrated
    await empty(migrated)


@pytest.fixture(params=["redis", "nats"])
async def broker(
    request: pytest.FixtureRequest, database: OrdersSettings, nats_server: NatsServer
) -> AsyncIterator[BrokerHarness]:
    """Each broker in turn: the tests taking it are the contract every adapter passes."""
    harness: BrokerHarness = (
        RedisHarness(database)
        if request.param == "redis"
        else NatsHarness(database, nats_server.url)
    )
    yield harness
    await harness.close()


@pytest.fixture
async def redis(database: OrdersSettings) -> AsyncIterator[Redis]:
    async with Redis.from_url(database.redis.url.get_secret_value()) as client:
        yield client


@pytest.fixture
async def engine(database: OrdersSettings) -> AsyncIterator[AsyncEngine]:
    engine = build_engine(database.database)
    yield engine
    await engine.dispose()


@pytest.fixture
def outbox(settings: OrdersSettings) -> OutboxWriter:
    return OutboxWriter(published_events(settings.events.type_prefix), settings.events)


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


@pytest.fixture
def new_publisher(engine: AsyncEngine, redis: Redis, settings: OrdersSettings) -> NewPublisher:
    def build(broker: MessageBroker | None = None, **overrides: Any) -> OutboxPublisher:
        outbox = settings.outbox.model_copy(update=overrides)
        broker = broker or RedisStreamsBroker(redis, maxlen=outbox.stream_maxlen, timeout_seconds=2)
        return OutboxPublisher(engine, broker, outbox, OutboxMetrics(CollectorRegistry()))

    return build
