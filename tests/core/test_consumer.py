"""What only the Redis Streams consumer does: its done marker and processing lease in Redis.
The contract every broker's consumer keeps is tested in tests/core/brokers."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.consumer import Handler, StreamConsumer
from core.dead_letters import list_dead_letters
from core.events import CloudEvent
from core.metrics import ConsumerMetrics
from core.outbox.tables import InboxEvent
from core.outbox.writer import OutboxWriter
from orders.settings import SERVICE, OrdersSettings
from tests.core.brokers.conftest import STREAM, TYPE, applied_once, event, recorder, run_until
from tests.support import RedisServer

type NewConsumer = Callable[..., StreamConsumer]


async def publish(redis: Redis, *events: CloudEvent) -> None:
    for item in events:
        await redis.xadd(STREAM, item.to_fields())  # type: ignore[arg-type]


@pytest.fixture
def new_consumer(redis: Redis, settings: OrdersSettings) -> NewConsumer:
    def build(handler: Handler, name: str = "c1", **overrides: Any) -> StreamConsumer:
        options = settings.consumer.model_copy(update={"block_ms": 50, **overrides})
        metrics = ConsumerMetrics(CollectorRegistry())
        return StreamConsumer(redis, [STREAM], {TYPE: handler}, options, metrics, name=name)

    return build


def settled(redis: Redis, *also: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """True once each of `also` holds and the group has read and answered every entry."""

    async def check() -> bool:
        [group] = await redis.xinfo_groups(STREAM)
        return all(condition() for condition in also) and not (
            int(group["lag"] or 0) + int(group["pending"])
        )

    return check


async def pending_count(redis: Redis, group: str = SERVICE) -> int:
    summary = await redis.xpending(STREAM, group)
    return int(summary["pending"])


async def test_a_handled_event_leaves_a_done_marker_that_answers_its_copy(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await publish(redis, event("evt-1", amount="10.00"), event("evt-1", amount="10.00"))
    await run_until([consumer], settled(redis))
    assert [(e.id, dict(e.data)) for e in seen] == [("evt-1", {"amount": "10.00"})]
    assert await pending_count(redis) == 0
    assert await redis.get("dedup:orders:/services/payments:evt-1") == b"done"


async def test_a_consumer_that_died_while_handling_is_retried_not_dead_lettered(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await publish(redis, event())
    # A consumer read it, took the lease, and died mid-handler: its lease lingers a while.
    await redis.xreadgroup(SERVICE, "crashed", {STREAM: ">"}, count=10)
    await redis.set("dedup:orders:/services/payments:evt-1", "processing:crashed", px=600)
    await run_until([consumer], settled(redis, lambda: bool(seen)))
    assert [e.id for e in seen] == ["evt-1"]  # run once the lease expired, not given up on
    assert await list_dead_letters(redis, STREAM) == []
    assert await pending_count(redis) == 0


async def test_the_processing_lease_turns_a_concurrent_copy_away(
    redis: Redis, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    effects, apply_once = applied_once(engine, outbox, hold_seconds=0.2)

    first = new_consumer(apply_once, name="c1", retry_base_seconds=0.1, batch_size=1)
    second = new_consumer(apply_once, name="c2", retry_base_seconds=0.1, batch_size=1)
    await first.ensure_groups()
    await publish(redis, event(), event())
    await asyncio.gather(first.read_once(), second.read_once())  # one copy each, at once
    busy = first.metrics.messages.labels(STREAM, "in_progress_elsewhere")
    busy_too = second.metrics.messages.labels(STREAM, "in_progress_elsewhere")
    assert busy._value.get() + busy_too._value.get() == 1  # the lease turned one away
    await run_until([first, second], settled(redis))
    assert effects == ["evt-1"]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboxEvent)) == 1
    assert await pending_count(redis) == 0


async def test_the_database_inbox_stops_a_duplicate_the_redis_marker_forgot(
    redis: Redis, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    effects, apply_once = applied_once(engine, outbox)

    consumer = new_consumer(apply_once)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_until([consumer], settled(redis))
    await redis.delete("dedup:orders:/services/payments:evt-1")  # as if its TTL ran out
    await publish(redis, event())
    await run_until([consumer], settled(redis))
    assert effects == ["evt-1"]
    assert await pending_count(redis) == 0


async def test_pending_entries_trimmed_from_the_stream_are_dead_lettered_not_lost(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await publish(redis, event("evt-1"), event("evt-2"))
    await redis.xreadgroup(SERVICE, "crashed", {STREAM: ">"}, count=10)  # then died
    await redis.xtrim(STREAM, maxlen=0)  # retention trimmed them before anyone reclaimed them
    dead = consumer.metrics.messages.labels(STREAM, "dead_letter")
    await run_until([consumer], settled(redis, lambda: dead._value.get() == 2))
    letters = await list_dead_letters(redis, STREAM)
    assert [letter["dlq_reason"] for letter in letters] == ["entry no longer exists"] * 2
    assert consumer.metrics.messages.labels(STREAM, "dead_letter")._value.get() == 2
    assert (seen, await pending_count(redis)) == ([], 0)


async def test_an_entry_whose_consumer_died_during_its_last_attempt_is_dead_lettered(
    redis: Redis, new_consumer: NewConsumer, settings: OrdersSettings
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    entry_id = await redis.xadd(STREAM, event().to_fields())  # type: ignore[arg-type]
    await redis.xreadgroup(SERVICE, "crashed", {STREAM: ">"}, count=1)
    # Every attempt ran, the last one in a consumer that died before answering.
    last = settings.consumer.max_retries + 1
    await redis.hset(f"attempts:{SERVICE}:{STREAM}", entry_id, last)
    await run_until([consumer], settled(redis))
    [letter] = await list_dead_letters(redis, STREAM)
    assert (letter["dlq_reason"], letter["dlq_attempts"]) == ("attempts exhausted", str(last))
    assert seen == []  # no fifth run
    assert await redis.get("dedup:orders:/services/payments:evt-1") is None  # no lease left


async def test_a_redis_outage_mid_consume_is_waited_out(
    settings: OrdersSettings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path, persistent=True)  # its stream and group outlive the restart
    server.start()
    seen, handle = recorder()
    options = settings.consumer.model_copy(update={"block_ms": 50})
    own = Redis.from_url(server.url)
    stopped = False

    async def outage_then_an_event() -> bool:
        """Once the consumer has handled one, Redis stops (the consumer's blocking read breaks)
        and starts again, and one more event comes."""
        nonlocal stopped
        if seen and not stopped:
            server.stop()
            stopped = True
            server.start()
            async with Redis.from_url(server.url) as later:  # the test's own connection broke too
                await publish(later, event("evt-2"))
        return len(seen) == 2

    try:
        consumer = StreamConsumer(
            own, [STREAM], {TYPE: handle}, options, ConsumerMetrics(CollectorRegistry()), name="c1"
        )
        await consumer.ensure_groups()
        await publish(own, event("evt-1"))
        await run_until([consumer], outage_then_an_event)
        assert [e.id for e in seen] == ["evt-1", "evt-2"]
    finally:
        await own.aclose()
        server.stop()


async def test_a_consumer_started_while_redis_is_down_consumes_once_it_is_up(
    settings: OrdersSettings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    seen, handle = recorder()
    options = settings.consumer.model_copy(update={"block_ms": 50})
    own = Redis.from_url(server.url, socket_connect_timeout=1)
    consumer = StreamConsumer(
        own, [STREAM], {TYPE: handle}, options, ConsumerMetrics(CollectorRegistry()), name="c1"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.sleep(1.0)  # Redis is not there yet
        server.start()
        await publish(own, event())
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
        while not seen:
            assert not task.done(), "the consumer stopped by itself"
            assert time.monotonic() < deadline, "the consumer never consumed"
            await asyncio.sleep(0.1)
        assert [e.id for e in seen] == ["evt-1"]
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await own.aclose()
        server.stop()


async def test_a_stream_removed_under_a_running_consumer_is_consumed_again(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    """`DEL` of the stream, or a Redis restarted without its data, takes the group with it; the
    stream an XADD creates again has none until the consumer creates it."""
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await publish(redis, event("evt-1"))
    removed = False

    async def removed_then_an_event() -> bool:
        nonlocal removed
        if seen and not removed:
            removed = True
            await redis.delete(STREAM)
            await publish(redis, event("evt-2"))
        return "evt-2" in {e.id for e in seen}

    await run_until([consumer], removed_then_an_event)
    assert [e.id for e in seen] == ["evt-1", "evt-2"]
