"""Broker outage: the API keeps taking orders and every event arrives once Redis is back."""

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from orders.main import create_app
from orders.settings import OrdersSettings
from orders.worker import run_publisher
from tests.core.outbox.conftest import read_stream
from tests.support import RedisServer, order_payload, serve_in_process


@pytest.mark.slow
async def test_redis_down_for_ten_seconds_loses_no_order_and_no_event(
    database: OrdersSettings, tmp_path: Path
) -> None:
    broker = RedisServer(tmp_path, persistent=True)  # as compose runs it: append-only
    broker.start()
    redis = database.redis.model_copy(update={"url": SecretStr(broker.url)})
    settings = database.model_copy(update={"redis": redis})
    stop = asyncio.Event()
    publisher = asyncio.create_task(run_publisher(settings, stop))
    placed: list[str] = []
    try:
        async with serve_in_process(create_app(settings)) as client:

            async def place(count: int) -> None:
                for _ in range(count):
                    response = await client.post("/v1/orders", json=order_payload())
                    assert response.status_code == 201
                    placed.append(response.json()["id"])
                    await asyncio.sleep(0.05)

            await place(10)
            broker.stop()
            before_outage = len(placed)
            outage = asyncio.create_task(asyncio.sleep(10))
            while not outage.done():
                await place(1)
            placed_while_down = len(placed) - before_outage
            broker.start()
            await place(10)

        async with Redis.from_url(broker.url) as reader:
            for _ in range(300):
                entries = await read_stream(reader)
                if len(entries) >= len(placed):
                    break
                await asyncio.sleep(0.1)
        delivered = {entry["partitionkey"] for entry in entries}
        assert delivered == set(placed)
        assert placed_while_down > 0  # orders kept coming in during the outage
    finally:
        stop.set()
        await publisher
        broker.stop()
