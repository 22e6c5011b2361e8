"""Consumer drills with real consumer processes, on each broker: a consumer killed mid-batch,
stopped by SIGTERM (mid-batch, mid-reclaim, after its broker went away)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.jetstream import stream_for
from orders.settings import OrdersSettings
from tests.brokers import BrokerHarness, NatsHarness, RedisHarness
from tests.core.brokers import drill_consumer
from tests.core.brokers.conftest import GROUP, STREAM, event
from tests.core.brokers.test_drills import exited, stop
from tests.support import NatsServer, service_env

# A short handler timeout, so a dead consumer's messages come back within seconds.
FAST_TAKEOVER = {
    "ORDERS_CONSUMER__GROUP": GROUP,
    "ORDERS_CONSUMER__BATCH_SIZE": "200",
    "ORDERS_CONSUMER__HANDLER_TIMEOUT_SECONDS": "1",
    "ORDERS_CONSUMER__BLOCK_MS": "100",
}


def start_consumer(
    settings: OrdersSettings, handler_seconds: float, **env: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.brokers.drill_consumer"],
        env=service_env(settings, DRILL_HANDLER_SECONDS=str(handler_seconds), **env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def go(process: subprocess.Popen[bytes]) -> None:
    assert process.stdin is not None
    process.stdin.write(b"go\n")
    process.stdin.flush()


async def applied(engine: AsyncEngine) -> list[tuple[str, str, int, str]]:
    """The effects applied, in the order their transactions took them."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT event_id, key, sequence, consumer FROM drill_effects ORDER BY applied")
        )
        return [(row.event_id, row.key, row.sequence, row.consumer) for row in result]


async def wait_until_ready(process: subprocess.Popen[bytes]) -> None:
    """Until the consumer says it runs; its exit first fails the test with its output."""
    await wait_for_line(process, b"drill.consumer_ready")


async def wait_for_line(process: subprocess.Popen[bytes], text: bytes) -> None:
    """Until a line of the consumer's output holds `text`; its exit first fails the test."""
    assert process.stdout is not None
    while True:
        line = await asyncio.to_thread(process.stdout.readline)
        assert line, f"the consumer exited before it printed {text!r}"
        if text in line:
            return


@pytest.fixture
async def effects_table(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.execute(text(drill_consumer.CREATE))
    yield
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE drill_effects"))


@pytest.mark.slow
@pytest.mark.usefixtures("effects_table")
async def test_a_consumer_killed_mid_batch_is_taken_over_once_and_in_order(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    keys, versions = 3, 6
    backlog = [
        event(f"k{key}-{version}", partitionkey=f"k{key}", sequence=version)
        for version in range(1, versions + 1)
        for key in range(keys)
    ]
    await broker.publish(STREAM, *backlog)
    first = start_consumer(broker.settings, 0.3, **FAST_TAKEOVER)
    second = start_consumer(broker.settings, 0.3, **FAST_TAKEOVER)
    try:
        await wait_until_ready(first)
        await wait_until_ready(second)
        go(first)
        # The whole backlog is the first one's batch; each effect is in flight a while, so the
        # kill most likely lands in the middle of one, with the second one running.
        deadline = time.monotonic() + 120  # bounds on the loops, not speed goals
        while len(await applied(engine)) < 3:
            assert first.poll() is None, "the first consumer exited"
            assert time.monotonic() < deadline, "the first consumer never got going"
            await asyncio.sleep(0.01)
        go(second)
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
        deadline = time.monotonic() + 120
        while await broker.outstanding(STREAM, GROUP):
            assert second.poll() is None, second.communicate()[0].decode()
            assert time.monotonic() < deadline, "the second consumer did not take over"
            await asyncio.sleep(0.1)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
        stop(second)
    rows = await applied(engine)
    assert Counter(row[0] for row in rows) == Counter(item.id for item in backlog)
    assert len({row[3] for row in rows}) == 2  # the second applied what the first left
    for key in range(keys):
        sequences = [row[2] for row in rows if row[1] == f"k{key}"]
        assert sequences == list(range(1, versions + 1)), f"k{key}"


async def stopped_by_sigterm(
    engine: AsyncEngine, consumer: subprocess.Popen[bytes]
) -> tuple[int, int, bytes]:
    """SIGTERM once the consumer has applied a few; effects then, effects after, its output."""
    deadline = time.monotonic() + 120  # bounds on the loops, not speed goals
    while len(await applied(engine)) < 2:
        assert consumer.poll() is None, "the consumer exited"
        assert time.monotonic() < deadline, "the consumer never got going"
        await asyncio.sleep(0.01)
    consumer.send_signal(signal.SIGTERM)
    at_signal = len(await applied(engine))
    # One SIGTERM only: a second one reaching a consumer already on its way out, its handler
    # gone, would kill it.
    output = exited(consumer)
    return at_signal, len(await applied(engine)), output


@pytest.mark.slow
@pytest.mark.usefixtures("effects_table")
async def test_sigterm_stops_the_consumer_after_the_message_in_hand(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    await broker.publish(STREAM, *(event(f"evt-{n}") for n in range(50)))
    consumer = start_consumer(broker.settings, 0.3, **FAST_TAKEOVER)
    await wait_until_ready(consumer)
    go(consumer)
    at_signal, after, output = await stopped_by_sigterm(engine, consumer)
    assert after <= at_signal + 1  # the one in hand is finished; the backlog is left
    assert b"consumer.stopped" in output
    assert await broker.outstanding(STREAM, GROUP) == 50 - after  # left for the next one


@pytest.mark.slow
@pytest.mark.usefixtures("effects_table")
async def test_sigterm_stops_a_redis_consumer_in_the_middle_of_a_long_reclaim(
    engine: AsyncEngine, database: OrdersSettings
) -> None:
    broker = RedisHarness(database)  # only Redis reclaims: JetStream redelivers by itself
    try:
        await broker.consumer(STREAM, {}, database.consumer, "setup").ensure_groups()
        await broker.publish(STREAM, *(event(f"evt-{n}") for n in range(50)))
        for _ in range(50):  # read by a consumer that died at once: all fifty are to reclaim
            await broker.abandon_one(STREAM, GROUP)
        consumer = start_consumer(broker.settings, 0.3, **FAST_TAKEOVER)
        await wait_until_ready(consumer)
        go(consumer)
        at_signal, after, output = await stopped_by_sigterm(engine, consumer)
    finally:
        await broker.close()
    assert after <= at_signal + 1
    assert b"consumer.stopped" in output


@pytest.mark.slow
@pytest.mark.usefixtures("effects_table")
async def test_sigterm_stops_a_nats_consumer_cleanly_after_nats_went_away(
    database: OrdersSettings, tmp_path: Path
) -> None:
    """As `compose down` stops NATS beside the consumer: its client is reconnecting, with the
    fetches it made meanwhile buffered, and the consumer still exits 0."""
    server = NatsServer(tmp_path)
    server.start()
    broker = NatsHarness(database, server.url)
    try:
        consumer = start_consumer(broker.settings, 0, **FAST_TAKEOVER)
        await wait_until_ready(consumer)
        go(consumer)
        await until_subscribed(server.url)
    finally:
        server.stop()
    # A reconnection failed: 0.5 s after the loss, in which the 100 ms fetches were buffered.
    await wait_for_line(consumer, b"Connect call failed")
    consumer.send_signal(signal.SIGTERM)
    assert b"consumer.stopped" in exited(consumer)


async def until_subscribed(url: str) -> None:
    """Until the group's durable consumer exists on the drills' stream."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        deadline = time.monotonic() + 120  # a bound for a loaded machine, not a speed goal
        while True:
            try:
                await js.consumer_info(stream_for(STREAM), GROUP)
            except NotFoundError:
                assert time.monotonic() < deadline, "the consumer never subscribed"
                await asyncio.sleep(0.1)
            else:
                return
    finally:
        await client.close()
