"""The consumer on each broker: acks, duplicates, retries with backoff, dead letters, replay."""

import asyncio
import itertools
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from core.errors import ConcurrentUpdateError, ConflictError
from core.events import CloudEvent
from core.handling import Consumer
from core.outbox.tables import InboxEvent
from core.outbox.writer import OutboxWriter
from tests.brokers import BrokerHarness
from tests.core.brokers.conftest import (
    GROUP,
    STREAM,
    NewConsumer,
    applied_once,
    event,
    finished,
    recorder,
    run_until,
)


def counted(consumer: Consumer, result: str) -> float:
    return float(consumer.metrics.messages.labels(STREAM, result)._value.get())


async def test_an_event_is_handled_once_and_acked(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event("evt-1", amount="10.00"), event("evt-1", amount="10.00"))
    await run_until([consumer], finished(broker))
    assert [(e.id, dict(e.data)) for e in seen] == [("evt-1", {"amount": "10.00"})]
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_an_undecodable_message_is_dead_lettered_at_once(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    await broker.publish_raw(STREAM, {"specversion": "1.0", "id": "x", "data": "not json"})
    await run_until([consumer], finished(broker))
    [letter] = await broker.dead_letters().entries(STREAM)
    assert letter["dlq_reason"].startswith("undecodable: missing attributes")
    assert letter["dlq_attempts"] == "0"  # no handler ever ran
    assert (letter["id"], letter["data"]) == ("x", "not json")  # kept as it came
    assert (seen, await broker.outstanding(STREAM, GROUP)) == ([], 0)


async def test_a_business_rejection_is_dead_lettered_without_retries(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    calls = 0

    async def reject(_: CloudEvent) -> None:
        nonlocal calls
        calls += 1
        raise ConflictError("order o-1 is cancelled; cannot confirm it")

    consumer = new_consumer(reject, retry_base_seconds=0.05)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await run_until([consumer], finished(broker))
    [letter] = await broker.dead_letters().entries(STREAM)
    assert letter["dlq_reason"] == "rejected: order o-1 is cancelled; cannot confirm it"
    assert (calls, await broker.outstanding(STREAM, GROUP)) == (1, 0)


async def test_a_handler_that_always_fails_gets_four_attempts_then_one_dead_letter(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    attempts: list[float] = []

    async def fail(_: CloudEvent) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError("downstream is broken")

    consumer = new_consumer(fail, retry_base_seconds=0.25)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await run_until([consumer], finished(broker))
    assert len(attempts) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # From each attempt's start (its failure follows at once): about 0.25 s, 0.5 s, 1 s, never
    # sooner than the backoff less its 20% jitter. A longer gap is the machine's load.
    assert [gap >= 0.8 * base for gap, base in zip(gaps, (0.25, 0.5, 1.0), strict=True)] == [
        True
    ] * 3
    [letter] = await broker.dead_letters().entries(STREAM)
    assert (letter["dlq_reason"], letter["dlq_attempts"]) == (
        "failed: RuntimeError('downstream is broken')",
        "4",
    )
    assert letter["id"] == "evt-1"
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_the_retry_backoff_counts_from_the_failure_not_from_the_delivery(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    runs: list[tuple[float, float]] = []

    async def fail_slowly(_: CloudEvent) -> None:
        started = time.monotonic()
        await asyncio.sleep(0.5)  # longer than the first backoffs
        runs.append((started, time.monotonic()))
        raise RuntimeError("downstream is slow and broken")

    consumer = new_consumer(fail_slowly, retry_base_seconds=0.25, handler_timeout_seconds=2)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
        while not await broker.dead_letters().entries(STREAM):
            assert time.monotonic() < deadline, "never dead-lettered"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert len(runs) == 4
    waits = [later[0] - earlier[1] for earlier, later in itertools.pairwise(runs)]
    # From each failure: about 0.25 s, 0.5 s, 1 s, never sooner than less its 20% jitter.
    assert [wait >= 0.8 * base for wait, base in zip(waits, (0.25, 0.5, 1.0), strict=True)] == [
        True
    ] * 3, waits


@pytest.mark.parametrize(
    "failures",
    [[ConnectionError("try again")] * 2, [ConcurrentUpdateError()]],
    ids=["flaky-downstream", "lost-optimistic-lock-race"],
)
async def test_a_handler_failing_a_few_times_succeeds_on_a_retry(
    broker: BrokerHarness, new_consumer: NewConsumer, failures: list[Exception]
) -> None:
    calls = 0

    async def flaky(_: CloudEvent) -> None:
        nonlocal calls
        calls += 1
        if calls <= len(failures):
            raise failures[calls - 1]

    consumer = new_consumer(flaky, retry_base_seconds=0.1)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await run_until([consumer], finished(broker))
    assert calls == len(failures) + 1
    assert await broker.dead_letters().entries(STREAM) == []
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_a_crashed_consumers_message_is_delivered_again(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    # A short handler timeout: a silent consumer is given up on soon after it.
    consumer = new_consumer(handle, retry_base_seconds=0.1, handler_timeout_seconds=0.3)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await broker.abandon_one(STREAM, GROUP)  # read by a consumer that died before answering
    await run_until([consumer], finished(broker, lambda: bool(seen)))
    assert [e.id for e in seen] == ["evt-1"]
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_one_event_delivered_twice_at_once_to_two_consumers_has_one_effect(
    broker: BrokerHarness, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    # Each copy holds its transaction a while: both are in flight at the same time.
    effects, apply_once = applied_once(engine, outbox, hold_seconds=0.2)

    first = new_consumer(apply_once, name="c1", retry_base_seconds=0.1, batch_size=1)
    second = new_consumer(apply_once, name="c2", retry_base_seconds=0.1, batch_size=1)
    await first.ensure_groups()
    await second.ensure_groups()
    await broker.publish_copy(STREAM, event())
    await broker.publish_copy(STREAM, event())
    await asyncio.gather(first.read_once(), second.read_once())  # one copy each, at once
    await run_until([first, second], finished(broker))
    assert effects == ["evt-1"]
    assert counted(first, "duplicate") + counted(second, "duplicate") == 1
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboxEvent)) == 1
    assert await broker.dead_letters().entries(STREAM) == []
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_the_database_inbox_stops_a_duplicate_the_broker_let_through(
    broker: BrokerHarness, new_consumer: NewConsumer, engine: AsyncEngine, outbox: OutboxWriter
) -> None:
    effects, apply_once = applied_once(engine, outbox)

    consumer = new_consumer(apply_once)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await run_until([consumer], finished(broker))
    await broker.publish_copy(STREAM, event())  # past the broker's own deduplication
    await run_until([consumer], finished(broker))
    assert effects == ["evt-1"]
    assert counted(consumer, "duplicate") == 1
    assert await broker.outstanding(STREAM, GROUP) == 0


async def test_an_event_of_a_type_without_a_handler_is_dead_lettered_not_dropped(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    seen, handle = recorder()
    consumer = new_consumer(handle)
    await consumer.ensure_groups()
    # A new version of an event the service reads, published before the service learnt it.
    newer = event().to_fields() | {"type": "payments.payment.succeeded.v2"}
    await broker.publish_raw(STREAM, newer)
    with capture_logs() as logs:
        await run_until([consumer], finished(broker))
    [letter] = await broker.dead_letters().entries(STREAM)
    assert letter["dlq_reason"] == "no handler for type payments.payment.succeeded.v2"
    assert (letter["id"], letter["type"]) == ("evt-1", "payments.payment.succeeded.v2")
    assert counted(consumer, "dead_letter") == 1
    [line] = [line for line in logs if line["event"] == "consumer.message_dead_lettered"]
    assert line["reason"] == letter["dlq_reason"]
    assert (seen, await broker.outstanding(STREAM, GROUP)) == ([], 0)


async def test_a_replayed_dead_letter_is_handled_again(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    calls: list[str] = []
    broken = True

    async def until_fixed(item: CloudEvent) -> None:
        calls.append(item.id)
        if broken:
            raise ConflictError("not yet")

    consumer = new_consumer(until_fixed)
    await consumer.ensure_groups()
    await broker.publish(STREAM, event())
    await run_until([consumer], finished(broker))
    letters = broker.dead_letters()
    [letter] = await letters.entries(STREAM)
    shown = await letters.entry(STREAM, letter["entry_id"])
    assert shown is not None
    assert shown["dlq_reason"] == "rejected: not yet"

    broken = False
    assert await letters.replay(STREAM, letter["entry_id"]) is not None
    await run_until([consumer], finished(broker, lambda: len(calls) == 2))
    assert calls == ["evt-1", "evt-1"]
    assert await letters.entries(STREAM) == []
    assert await letters.replay(STREAM, letter["entry_id"]) is None
    assert await broker.outstanding(STREAM, GROUP) == 0
