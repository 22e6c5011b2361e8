"""A backlog larger than the stream's retention, on each broker: while a consumer group is
stopped, the stream fills to its cap; nothing the group has not read is dropped, the events
the stream cannot take wait in the outbox, and once there is room the group gets every event
once, in per-aggregate order."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from core.brokers import build_broker
from core.jetstream import JetStream, stream_for
from core.metrics import OutboxMetrics
from core.outbox.publisher import OutboxPublisher
from orders.settings import OrdersSettings
from tests.brokers import BrokerHarness
from tests.core.brokers.conftest import GROUP, recorder
from tests.core.outbox.conftest import TOPIC, insert_events, pending, versions_by_aggregate

CAP, KEYS, VERSIONS = 1000, 30, 100  # a backlog of three times the cap
TYPE = "orders.order.note_changed.v1"


def capped(settings: OrdersSettings) -> OrdersSettings:
    """The broker's retention cut down to CAP messages, short polls for a drill."""
    outbox = settings.outbox.model_copy(update={"stream_maxlen": CAP, "poll_max_seconds": 0.2})
    broker = settings.broker.model_copy(update={"nats_max_msgs": CAP})
    return settings.model_copy(update={"outbox": outbox, "broker": broker})


async def wait_for(
    failure: str, check: Callable[[], Awaitable[bool]], seconds: float = 300
) -> None:
    """A bound for a loaded two-core machine, not a speed goal."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.1)


async def make_room(broker: BrokerHarness, settings: OrdersSettings) -> None:
    """What an operator does on NATS (docs/runbooks.md, "A stream is full"): raise the limit.
    On Redis the group's reading makes room by itself."""
    if broker.kind != "nats":
        return
    jetstream = JetStream(settings.broker)
    try:
        js = await jetstream.context()
        config = (await js.stream_info(stream_for(TOPIC))).config
        config.max_msgs = -1
        await js.update_stream(config)
    finally:
        await jetstream.close()


@pytest.mark.slow
async def test_a_backlog_larger_than_the_retention_loses_nothing_while_the_group_is_stopped(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    settings = capped(broker.settings)
    if broker.kind == "nats":  # the stream as the publisher makes it, before the group's
        jetstream = JetStream(settings.broker)
        await jetstream.ensure_topic_stream(TOPIC)
        await jetstream.close()
    seen, handle = recorder()
    options = settings.consumer.model_copy(update={"block_ms": 50, "batch_size": 200})
    consumer = broker.consumer(TOPIC, {TYPE: handle}, options, "c1")
    await consumer.ensure_groups()  # the group exists; its consumers are stopped
    backlog = [(f"k{n}", v) for v in range(1, VERSIONS + 1) for n in range(KEYS)]
    ids = await insert_events(engine, backlog)

    registry = CollectorRegistry()
    adapter = build_broker(settings)
    publisher = OutboxPublisher(engine, adapter, settings.outbox, OutboxMetrics(registry))
    stop_consuming = asyncio.Event()
    consuming: asyncio.Task[None] | None = None
    try:

        async def refused() -> bool:
            return bool(registry.get_sample_value("outbox_broker_full_refusals_total"))

        async with publishing(publisher):
            await wait_for("the stream never filled", refused)
        held = await broker.count(TOPIC)
        assert CAP <= held < len(ids)
        assert await broker.outstanding(TOPIC, GROUP) == held  # none dropped unread
        assert await pending(engine) == len(ids) - held  # the rest wait in the outbox

        consuming = asyncio.create_task(consumer.run(stop_consuming))
        await make_room(broker, settings)

        async def caught_up() -> bool:
            return not await pending(engine) and not await broker.outstanding(TOPIC, GROUP)

        async with publishing(publisher):
            await wait_for("the group never got everything", caught_up, seconds=600)
    finally:
        stop_consuming.set()
        if consuming is not None:
            await consuming
        await adapter.close()
    assert Counter(event.id for event in seen) == dict.fromkeys(ids, 1)
    entries = [{"partitionkey": e.partitionkey, "sequence": e.sequence} for e in seen]
    expected = list(range(1, VERSIONS + 1))
    assert versions_by_aggregate(entries) == {f"k{n}": expected for n in range(KEYS)}


@asynccontextmanager
async def publishing(publisher: OutboxPublisher) -> AsyncIterator[None]:
    """The publisher runs inside the block; its batch in flight is settled when it ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
