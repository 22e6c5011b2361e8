"""The Redis Streams consumer on a real Redis: acks, duplicates, retries, dead letters."""

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.consumer import Handler, StreamConsumer, dead_letter_stream
from core.database import build_session_factory
from core.dead_letters import list_dead_letters, replay_dead_letter, show_dead_letter
from core.errors import ConcurrentUpdateError, ConflictError
from core.events import CloudEvent
from core.metrics import ConsumerMetrics
from core.outbox.tables import InboxEvent
from core.outbox.writer import OutboxWriter
from core.unit_of_work import InboxEntry, UnitOfWork
from orders.settings import OrdersSettings

STREAM = "payments"
TYPE = "payments.payment.succeeded.v1"
type NewConsumer = Callable[..., StreamConsumer]


def event(event_id: str = "evt-1", **data: Any) -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source="/services/payments",
        type=TYPE,
        subject=f"payment/{event_id}",
        time="2026-11-21T10:00:00Z",
        data=data or {"n": 1},
        partitionkey=event_id,
        sequence="00000000000000000001",
    )


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


async def run_for(consumers: list[StreamConsumer], seconds: float) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)


async def pending_count(redis: Redis, group: str = "orders") -> int:
    summary = await redis.xpending(STREAM, group)
    return int(summary["pending"])


def recorder() -> tuple[list[CloudEvent], Handler]:
    seen: list[CloudEvent] = []

    async def handle(item: CloudEvent) -> None:
        seen.append(item)

    return seen, handle


async def test_an_event_is_handled_once_and_acked(redis: Redis, new_consumer: NewConsumer) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await publish(redis, event("evt-1", amount="10.00"), event("evt-1", amount="10.00"))
    await run_for([consumer], 0.3)
    assert [(e.id, dict(e.data)) for e in seen] == [("evt-1", {"amount": "10.00"})]
    assert await pending_count(redis) == 0
    assert await redis.get("dedup:orders:/services/payments:evt-1") == b"done"


async def test_an_undecodable_entry_is_dead_lettered_at_once(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await redis.xadd(STREAM, {"specversion": "1.0", "id": "x", "data": "not json"})
    await run_for([consumer], 0.3)
    [letter] = await list_dead_letters(redis, STREAM)
    assert letter["dlq_reason"].startswith("undecodable: missing attributes")
    assert letter["dlq_attempts"] == "0"  # no handler ever ran
    assert (seen, await pending_count(redis)) == ([], 0)


async def test_a_business_rejection_is_dead_lettered_without_retries(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    calls = 0

    async def reject(_: CloudEvent) -> None:
        nonlocal calls
        calls += 1
        raise ConflictError("order o-1 is cancelled; cannot confirm it")

    consumer = new_consumer(reject, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 0.5)
    [letter] = await list_dead_letters(redis, STREAM)
    assert letter["dlq_reason"] == "rejected: order o-1 is cancelled; cannot confirm it"
    assert (calls, await pending_count(redis)) == (1, 0)


async def test_a_handler_that_always_fails_gets_four_attempts_then_one_dead_letter(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    attempts: list[float] = []

    async def fail(_: CloudEvent) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError("downstream is broken")

    consumer = new_consumer(fail, retry_base_seconds=0.25)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 3.5)
    assert len(attempts) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # About 0.25 s, 0.5 s, 1 s: never sooner than the backoff less its 20% jitter.
    assert [gap >= 0.8 * base for gap, base in zip(gaps, (0.25, 0.5, 1.0), strict=True)] == [
        True
    ] * 3
    [letter] = await list_dead_letters(redis, STREAM)
    assert (letter["dlq_reason"], letter["dlq_attempts"]) == (
        "failed: RuntimeError('downstream is broken')",
        "4",
    )
    assert letter["id"] == "evt-1"
    assert await pending_count(redis) == 0


async def test_a_flaky_handler_succeeds_on_a_retry(redis: Redis, new_consumer: NewConsumer) -> None:
    calls = 0

    async def flaky(_: CloudEvent) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("try again")

    consumer = new_consumer(flaky, retry_base_seconds=0.1)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 1.0)
    assert calls == 3
    assert (await list_dead_letters(redis, STREAM), await pending_count(redis)) == ([], 0)


async def test_a_lost_optimistic_lock_race_is_retried(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    calls = 0

    async def racing(_: CloudEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConcurrentUpdateError

    consumer = new_consumer(racing, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 0.5)
    assert calls == 2
    assert (await list_dead_letters(redis, STREAM), await pending_count(redis)) == ([], 0)


async def test_a_crashed_consumers_entries_are_reclaimed(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle, retry_base_seconds=0.1)
    await consumer.ensure_groups()
    await publish(redis, event())
    # Another consumer read it and died before acking: the entry sits in its pending list.
    await redis.xreadgroup("orders", "crashed", {STREAM: ">"}, count=10)
    await run_for([consumer], 0.6)
    assert [e.id for e in seen] == ["evt-1"]
    assert await pending_count(redis) == 0


async def test_a_consumer_that_died_while_handling_is_retried_not_dead_lettered(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await publish(redis, event())
    # A consumer read it, took the lease, and died mid-handler: its lease lingers a while.
    await redis.xreadgroup("orders", "crashed", {STREAM: ">"}, count=10)
    await redis.set("dedup:orders:/services/payments:evt-1", "processing:crashed", px=600)
    await run_for([consumer], 1.5)
    assert [e.id for e in seen] == ["evt-1"]  # run once the lease expired, not given up on
    assert await list_dead_letters(redis, STREAM) == []
    assert await pending_count(redis) == 0


async def test_one_event_delivered_twice_at_once_to_two_consumers_has_one_effect(
    redis: Redis, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    sessions = build_session_factory(engine)
    effects: list[str] = []

    async def apply_once(item: CloudEvent) -> None:
        async with UnitOfWork(sessions, outbox, InboxEntry("orders", item.source, item.id)) as uow:
            await asyncio.sleep(0.2)  # both copies are in flight at the same time
            await uow.commit()
        effects.append(item.id)

    first = new_consumer(apply_once, name="c1", retry_base_seconds=0.1, batch_size=1)
    second = new_consumer(apply_once, name="c2", retry_base_seconds=0.1, batch_size=1)
    await first.ensure_groups()
    await publish(redis, event(), event())
    await asyncio.gather(first.read_once(), second.read_once())  # one copy each, at once
    busy = first.metrics.messages.labels(STREAM, "in_progress_elsewhere")
    busy_too = second.metrics.messages.labels(STREAM, "in_progress_elsewhere")
    assert busy._value.get() + busy_too._value.get() == 1  # the lease turned one away
    await run_for([first, second], 0.8)
    assert effects == ["evt-1"]
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboxEvent)) == 1
    assert await pending_count(redis) == 0


async def test_the_database_inbox_stops_a_duplicate_the_redis_marker_forgot(
    redis: Redis, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    sessions = build_session_factory(engine)
    effects: list[str] = []

    async def apply_once(item: CloudEvent) -> None:
        async with UnitOfWork(sessions, outbox, InboxEntry("orders", item.source, item.id)) as uow:
            await uow.commit()
        effects.append(item.id)

    consumer = new_consumer(apply_once)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 0.2)
    await redis.delete("dedup:orders:/services/payments:evt-1")  # as if its TTL ran out
    await publish(redis, event())
    await run_for([consumer], 0.2)
    assert effects == ["evt-1"]
    assert await pending_count(redis) == 0


async def test_events_of_types_without_a_handler_are_acked_and_skipped(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    fields = event().to_fields() | {"type": "payments.refund.issued.v1"}
    await redis.xadd(STREAM, fields)  # type: ignore[arg-type]
    await run_for([consumer], 0.2)
    assert (seen, await pending_count(redis)) == ([], 0)


async def test_a_replayed_dead_letter_is_handled_again(
    redis: Redis, new_consumer: NewConsumer
) -> None:
    calls: list[str] = []
    broken = True

    async def until_fixed(item: CloudEvent) -> None:
        calls.append(item.id)
        if broken:
            raise ConflictError("not yet")

    consumer = new_consumer(until_fixed)
    await consumer.ensure_groups()
    await publish(redis, event())
    await run_for([consumer], 0.2)
    [letter] = await list_dead_letters(redis, STREAM)
    shown = await show_dead_letter(redis, STREAM, letter["entry_id"])
    assert shown is not None
    assert shown["dlq_reason"] == "rejected: not yet"

    broken = False
    assert await replay_dead_letter(redis, STREAM, letter["entry_id"]) is not None
    await run_for([consumer], 0.2)
    assert calls == ["evt-1", "evt-1"]
    assert await redis.xlen(dead_letter_stream(STREAM)) == 0
    assert await replay_dead_letter(redis, STREAM, letter["entry_id"]) is None
