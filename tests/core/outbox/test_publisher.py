"""The publisher's own rules on real PostgreSQL and Redis: batches, late commits, backoff, holds,
dead events. What every broker must do with it is in tests/core/brokers."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from core.database import build_engine
from core.events import CloudEvent
from core.metrics import OutboxMetrics
from core.outbox.broker import (
    BrokerUnavailableError,
    MessageBroker,
    PermanentPublishError,
    PublishError,
    RedisStreamsBroker,
)
from core.outbox.dead import discard_dead_event, list_dead_events, replay_dead_event
from core.outbox.publisher import OutboxPublisher
from core.outbox.tables import DeadEvent, OutboxEvent
from orders.cli import migrate
from orders.settings import OrdersSettings
from tests.conftest import NewPublisher
from tests.core.outbox.conftest import (
    insert_events,
    read_stream,
    versions_by_aggregate,
)
from tests.support import PostgresServer


class RefusingBroker:
    """Refuses the events whose ids it is given; passes everything else to the real broker."""

    def __init__(self, inner: MessageBroker, refused: set[str], *, permanent: bool) -> None:
        self.inner = inner
        self.system = inner.system
        self.refused = refused
        self.permanent = permanent
        self.attempts: list[str] = []

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        self.attempts.extend(event.id for _, event in messages)
        allowed = [(topic, event) for topic, event in messages if event.id not in self.refused]
        results = iter(await self.inner.publish(allowed))
        error = PermanentPublishError if self.permanent else PublishError
        return [
            error("refused by the test") if event.id in self.refused else next(results)
            for _, event in messages
        ]

    async def close(self) -> None:
        await self.inner.close()


class DownBroker:
    system = "test"

    async def publish(
        self,
        messages: Sequence[tuple[str, CloudEvent]],  # noqa: ARG002
    ) -> list[PublishError | None]:
        raise BrokerUnavailableError("connection refused")

    async def close(self) -> None:
        pass


async def count(engine: AsyncEngine, table: type[OutboxEvent] | type[DeadEvent]) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(table)) or 0


async def test_batches_are_bounded_and_drain_in_order(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    await insert_events(engine, [(f"k{k}", v) for v in range(1, 6) for k in range(10)])
    publisher = new_publisher(batch_size=7)
    batches = []
    while published := await publisher.publish_batch():
        batches.append(published)
    assert max(batches) <= 7
    assert sum(batches) == 50
    assert all(
        versions == [1, 2, 3, 4, 5]
        for versions in versions_by_aggregate(await read_stream(redis)).values()
    )


async def test_commits_out_of_id_order_are_all_delivered_and_a_rollback_never(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    """Open four transactions in id order, commit them in reverse, roll one back, publish
    between the commits: a high-water-mark publisher would skip the late ones."""
    publisher = new_publisher()
    connections = [await engine.connect() for _ in range(4)]
    transactions = [await connection.begin() for connection in connections]
    insert_one = text("""INSERT INTO outbox_events (event_id, source, type, subject, topic,
        aggregate_type, aggregate_id, aggregate_version, data)
        VALUES (gen_random_uuid(), '/services/orders', 'orders.order.note_changed.v1', :key,
        'orders', 'order', :key, 1, '{}') RETURNING id""")
    ids = [
        (await connection.execute(insert_one, {"key": f"tx{n}"})).scalar_one()
        for n, connection in enumerate(connections)
    ]
    assert ids == sorted(ids)
    for n in (3, 2, 1, 0):
        if n == 1:
            await transactions[n].rollback()
        else:
            await transactions[n].commit()
        await publisher.publish_batch()
    for connection in connections:
        await connection.close()
    delivered = sorted(e["partitionkey"] for e in await read_stream(redis))
    assert delivered == ["tx0", "tx2", "tx3"]


async def end_backoffs(engine: AsyncEngine) -> None:
    """Fast-forward: every backoff is over (holds behind dead events stay)."""
    async with engine.begin() as connection:
        for table, column in (("outbox_key_holds", "until"), ("outbox_events", "available_at")):
            await connection.execute(
                text(f"UPDATE {table} SET {column} = now() WHERE {column} <> 'infinity'")  # noqa: S608 - our own names
            )


async def test_a_backing_off_aggregate_never_crowds_out_the_others(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    [head] = await insert_events(engine, [("hot", 1)])
    broker = RefusingBroker(new_publisher()._broker, {head}, permanent=False)
    publisher = new_publisher(broker, candidate_window=50)
    await publisher.publish_batch()  # hot/1 fails: the aggregate backs off
    await insert_events(engine, [("hot", v) for v in range(2, 300)])  # more than the window
    await insert_events(engine, [("other", 1)])
    assert await publisher.publish_batch() == 1
    assert versions_by_aggregate(await read_stream(redis)) == {"other": [1]}


async def test_a_failing_event_backs_off_its_aggregate_only(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [("bad", 1), ("bad", 2), ("good", 1), ("good", 2)])
    inner = new_publisher()._broker
    broker = RefusingBroker(inner, {ids[0]}, permanent=False)
    publisher = new_publisher(broker)
    assert await publisher.publish_batch() == 2
    assert versions_by_aggregate(await read_stream(redis)) == {"good": [1, 2]}
    assert ids[1] not in broker.attempts  # never sent ahead of its predecessor

    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT aggregate_version, attempts, last_error FROM outbox_events ORDER BY 1")
        )
        assert [tuple(row) for row in rows] == [(1, 1, "refused by the test"), (2, 0, None)]
        [(reason, seconds)] = await connection.execute(
            text("SELECT reason, extract(epoch FROM until - now()) FROM outbox_key_holds")
        )
    assert reason == "refused by the test"
    assert 0.5 < seconds <= 1.2  # the first backoff: 1 s, jittered
    assert await publisher.publish_batch() == 0  # still backing off

    await end_backoffs(engine)
    broker.refused.clear()
    assert await publisher.publish_batch() == 2
    assert versions_by_aggregate(await read_stream(redis))["bad"] == [1, 2]


async def test_a_poison_event_dies_and_blocks_only_its_aggregate(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [("poison", 1), ("poison", 2), ("fine", 1)])
    broker = RefusingBroker(new_publisher()._broker, {ids[0]}, permanent=True)
    publisher = new_publisher(broker)
    assert await publisher.publish_batch() == 1
    [dead] = await list_dead_events(engine)
    assert (str(dead["event_id"]), dead["dead_reason"]) == (ids[0], "refused permanently")
    await insert_events(engine, [("poison", 3), ("fine", 2)])
    assert await publisher.publish_batch() == 1  # fine/2 only; poison/2 and /3 wait
    assert versions_by_aggregate(await read_stream(redis)) == {"fine": [1, 2]}

    broker.refused.clear()
    assert await replay_dead_event(engine, dead["event_id"]) is True
    assert await publisher.publish_batch() == 3
    assert versions_by_aggregate(await read_stream(redis))["poison"] == [1, 2, 3]
    assert await count(engine, DeadEvent) == 0


async def test_an_event_dies_after_its_last_attempt_and_discarding_unblocks(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [("flaky", 1), ("flaky", 2)])
    broker = RefusingBroker(new_publisher()._broker, {ids[0]}, permanent=False)
    publisher = new_publisher(broker, max_attempts=3)
    for _ in range(3):
        await publisher.publish_batch()
        await end_backoffs(engine)
    [dead] = await list_dead_events(engine)
    assert (dead["attempts"], dead["dead_reason"]) == (3, "gave up after 3 attempts")
    assert broker.attempts == [ids[0]] * 3
    assert await publisher.publish_batch() == 0  # flaky/2 is held behind the dead event

    assert await discard_dead_event(engine, dead["event_id"]) is True
    assert await publisher.publish_batch() == 1
    assert versions_by_aggregate(await read_stream(redis)) == {"flaky": [2]}


async def test_with_the_skip_policy_a_dead_event_does_not_hold_back_its_aggregate(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [("poison", 1), ("poison", 2)])
    broker = RefusingBroker(new_publisher()._broker, {ids[0]}, permanent=True)
    publisher = new_publisher(broker, poison_policy="skip")
    await publisher.publish_batch()
    assert await publisher.publish_batch() == 1
    assert versions_by_aggregate(await read_stream(redis)) == {"poison": [2]}


async def test_an_unreachable_broker_loses_nothing(
    engine: AsyncEngine, new_publisher: NewPublisher
) -> None:
    await insert_events(engine, [("a", 1), ("b", 1)])
    publisher = new_publisher(DownBroker())
    with pytest.raises(BrokerUnavailableError):
        await publisher.publish_batch()
    async with engine.connect() as connection:
        attempts = (
            (await connection.execute(text("SELECT attempts FROM outbox_events"))).scalars().all()
        )
    assert attempts == [0, 0]  # an outage is nobody's fault: no attempt is spent


async def test_a_redis_out_of_memory_is_an_outage_not_the_events_fault(
    engine: AsyncEngine, redis: Redis, new_publisher: NewPublisher
) -> None:
    await insert_events(engine, [("a", 1), ("b", 1)])
    await redis.config_set("maxmemory", "1")  # every write is refused with OOM
    try:
        with pytest.raises(BrokerUnavailableError, match="OOM"):
            await new_publisher().publish_batch()
    finally:
        await redis.config_set("maxmemory", "0")
    async with engine.connect() as connection:
        attempts = (await connection.execute(text("SELECT attempts FROM outbox_events"))).scalars()
        assert list(attempts) == [0, 0]
    assert await new_publisher().publish_batch() == 2


@pytest.mark.slow  # a PostgreSQL of its own, created and stopped: seconds
async def test_the_publisher_waits_out_a_database_outage_and_publishes_after_it(
    settings: OrdersSettings, redis: Redis
) -> None:
    server = PostgresServer()
    try:
        server.start()
        own = settings.model_copy(
            update={"database": settings.database.model_copy(update={"port": server.port})}
        )
        await asyncio.to_thread(migrate, own)
        engine = build_engine(own.database)
        broker = RedisStreamsBroker(redis, maxlen=1000, timeout_seconds=2)
        outbox = own.outbox.model_copy(update={"poll_max_seconds": 0.2})
        publisher = OutboxPublisher(engine, broker, outbox, OutboxMetrics(CollectorRegistry()))
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        try:
            [first] = await insert_events(engine, [("a", 1)])
            await until(lambda: published(redis, 1))
            with capture_logs() as logs:
                await asyncio.to_thread(server.stop)
                await until(lambda: logged(logs, "outbox.database_unavailable"))
                await asyncio.to_thread(server.start)
                [second] = await insert_events(engine, [("a", 2)])
                await until(lambda: published(redis, 2))
            assert not task.done()  # the loop outlived the outage
        finally:
            stop.set()
            await task
            await engine.dispose()
        assert [entry["id"] for entry in await read_stream(redis)] == [first, second]
    finally:
        await asyncio.to_thread(server.remove)


async def published(redis: Redis, count: int) -> bool:
    return len(await read_stream(redis)) >= count


async def logged(logs: Sequence[Mapping[str, Any]], name: str) -> bool:
    return any(line["event"] == name for line in logs)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """A bound for a loaded machine, not a speed goal."""
    deadline = time.monotonic() + 120
    while not await condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.1)
