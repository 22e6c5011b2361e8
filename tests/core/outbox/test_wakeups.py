"""LISTEN/NOTIFY wakes the publisher at once; a lost listener falls back to polling."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orders.main import create_app
from orders.settings import OrdersSettings
from orders.worker import run_publisher
from tests.orders.payloads import order_payload
from tests.support import serve_in_process


@pytest.fixture
def notifying(database: OrdersSettings) -> OrdersSettings:
    """NOTIFY on, and a 60 s poll interval, so delivery within 20 s proves a wake-up."""
    events = database.events.model_copy(update={"notify": True})
    outbox = database.outbox.model_copy(update={"poll_min_seconds": 60, "poll_max_seconds": 60})
    return database.model_copy(update={"events": events, "outbox": outbox})


@pytest.fixture
async def publisher(notifying: OrdersSettings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_publisher(notifying, stop))
    await asyncio.sleep(1.0)  # connected, first poll done, now asleep for a minute
    yield
    stop.set()
    await task


async def delivered_within(redis: Redis, count: int, seconds: float) -> bool:
    for _ in range(int(seconds / 0.02)):
        if await redis.xlen("orders") >= count:
            return True
        await asyncio.sleep(0.02)
    return False


async def listener_pids(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %outbox%'")
        )
        return list(rows.scalars())


async def test_a_commit_wakes_the_sleeping_publisher(
    notifying: OrdersSettings, redis: Redis, publisher: None
) -> None:
    async with serve_in_process(create_app(notifying)) as client:
        await client.post("/v1/orders", json=order_payload())
    assert await delivered_within(redis, 1, seconds=20)


async def test_a_lost_listener_connection_polls_then_listens_again(
    notifying: OrdersSettings, redis: Redis, engine: AsyncEngine, publisher: None
) -> None:
    async with serve_in_process(create_app(notifying)) as client:
        await place(client)
        assert await delivered_within(redis, 1, seconds=20)
        [pid] = await listener_pids(engine)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await place(client)  # committed while nobody listens: caught up on reconnecting
        assert await delivered_within(redis, 2, seconds=20)
        assert await listening_again(engine, instead_of=pid, seconds=20)
        await place(client)
        assert await delivered_within(redis, 3, seconds=20)


async def listening_again(engine: AsyncEngine, instead_of: int, seconds: float) -> bool:
    """Whether a new listener connection appears within `seconds` (it reconnects on its own)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if (await listener_pids(engine)) not in ([], [instead_of]):
            return True
        await asyncio.sleep(0.1)
    return False


async def place(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/orders", json=order_payload())).status_code == 201
