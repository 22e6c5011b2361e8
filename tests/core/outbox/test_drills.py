"""Reliability drills with real publisher processes: crashes, several replicas, shutdown."""

import asyncio
import os
import random
import signal
import subprocess
import time
from collections import Counter

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox.tables import OutboxEvent
from orders.settings import OrdersSettings
from tests.core.outbox.conftest import insert_events, read_stream, versions_by_aggregate
from tests.support import free_port, start_command


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(OutboxEvent)) or 0


async def wait_until_drained(engine: AsyncEngine, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while await pending(engine):
        assert time.monotonic() < deadline, "the outbox was not drained"
        await asyncio.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> bytes:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode()
    return output


async def test_the_publisher_process_delivers_reports_and_stops_cleanly(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings
) -> None:
    ids = await insert_events(engine, [("a", 1), ("a", 2), ("b", 1)])
    port = free_port()
    process = start_command(database, "publish", ORDERS_OUTBOX__METRICS_PORT=str(port))
    try:
        await wait_until_drained(engine)
        entries = await read_stream(redis)
        assert sorted(e["id"] for e in entries) == sorted(ids)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "outbox_published_events_total 3.0" in metrics
    finally:
        output = stop(process)
    assert b'"event": "outbox.publisher_stopped"' in output


@pytest.mark.slow
async def test_four_publishers_keep_every_aggregates_order(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings
) -> None:
    keys = [f"agg{n}" for n in range(50)]
    processes = [
        start_command(database, "publish", ORDERS_OUTBOX__BATCH_SIZE="50") for _ in range(4)
    ]
    try:
        for version in range(1, 101):  # events keep arriving while all four run
            await insert_events(engine, [(key, version) for key in keys])
        await wait_until_drained(engine)
    finally:
        for process in processes:
            stop(process)
    entries = await read_stream(redis)
    assert len({e["id"] for e in entries}) == 5000
    for key, versions in versions_by_aggregate(entries).items():
        first_seen = list(dict.fromkeys(versions))  # a redelivery may repeat, never reorder
        assert first_seen == list(range(1, 101)), key


@pytest.mark.slow
async def test_kill_9_at_random_points_loses_nothing(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings
) -> None:
    batch, kills = 100, 3
    ids = await insert_events(engine, [(f"agg{n % 200}", n // 200 + 1) for n in range(10_000)])
    # Kill each publisher once the stream passes a random point, so every kill lands mid-flow.
    for target in sorted(random.sample(range(500, 9000), kills)):
        process = start_command(database, "publish", ORDERS_OUTBOX__BATCH_SIZE=str(batch))
        while await redis.xlen("orders") < target:
            assert process.poll() is None
            await asyncio.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert await pending(engine) > 0
    process = start_command(database, "publish", ORDERS_OUTBOX__BATCH_SIZE=str(batch))
    try:
        await wait_until_drained(engine)
    finally:
        stop(process)
    delivered = Counter(e["id"] for e in await read_stream(redis))
    assert set(delivered) == set(ids)
    duplicates = sum(delivered.values()) - len(ids)
    assert duplicates <= kills * batch
