"""Redis stream retention on a real Redis: a stream at its cap never drops an entry a consumer
group has not read; the events it cannot take wait in the outbox, charged nothing."""

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.metrics import OutboxMetrics
from core.outbox.broker import BrokerFullError, BrokerUnavailableError, RedisStreamsBroker
from core.outbox.publisher import OutboxPublisher
from core.outbox.tables import OutboxEvent
from orders.settings import OrdersSettings
from tests.core.outbox.conftest import (
    TOPIC,
    insert_events,
    pending,
    read_stream,
    refusal,
    versions_by_aggregate,
)

CAP, BACKLOG = 1000, 3000
GROUP = "billing"  # a service whose consumers are stopped: its group reads nothing meanwhile


def publisher(
    engine: AsyncEngine, redis: Redis, settings: OrdersSettings, registry: CollectorRegistry
) -> OutboxPublisher:
    broker = RedisStreamsBroker(redis, maxlen=CAP, timeout_seconds=5)
    return OutboxPublisher(engine, broker, settings.outbox, OutboxMetrics(registry))


async def read_as_group(redis: Redis, count: int) -> list[dict[str, str]]:
    """The group's next entries, acked: its consumers catching up."""
    reply: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] | None
    reply = await redis.xreadgroup(GROUP, "c1", {TOPIC: ">"}, count=count)  # type: ignore[assignment]
    entries = [(entry_id, fields) for _, batch in reply or [] for entry_id, fields in batch]
    if entries:
        await redis.xack(TOPIC, GROUP, *(entry_id for entry_id, _ in entries))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def max_attempts(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.max(OutboxEvent.attempts))) or 0


async def test_a_full_stream_keeps_what_a_group_has_not_read_and_the_outbox_keeps_the_rest(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings
) -> None:
    await redis.xgroup_create(TOPIC, GROUP, id="0", mkstream=True)
    ids = await insert_events(engine, [(f"agg{n % 50}", n // 50 + 1) for n in range(BACKLOG)])
    registry = CollectorRegistry()
    relay = publisher(engine, redis, database, registry)
    assert isinstance(await refusal(relay, BACKLOG), BrokerFullError)
    held = await redis.xlen(TOPIC)
    assert CAP <= held < BACKLOG
    assert await pending(engine) == BACKLOG - held  # nothing lost: the rest wait
    assert await max_attempts(engine) == 0  # and are charged nothing for it
    assert registry.get_sample_value("outbox_broker_full_refusals_total") == 1

    read = await read_as_group(redis, held)
    assert len({entry["id"] for entry in read}) == held  # every entry published is there
    for _ in range(BACKLOG):  # the group keeps reading; that is what makes room
        if not await pending(engine):
            break
        try:
            await relay.publish_batch()
        except BrokerUnavailableError:
            read += await read_as_group(redis, 500)
    read += await read_as_group(redis, BACKLOG)
    assert sorted(entry["id"] for entry in read) == sorted(ids)  # everything, once
    assert versions_by_aggregate(read) == {f"agg{n}": list(range(1, 61)) for n in range(50)}
    assert await redis.xlen(TOPIC) <= CAP + database.outbox.batch_size


async def test_a_stream_no_group_reads_keeps_its_newest_entries_only(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings
) -> None:
    ids = await insert_events(engine, [(f"agg{n % 50}", n // 50 + 1) for n in range(BACKLOG)])
    relay = publisher(engine, redis, database, CollectorRegistry())
    while await relay.publish_batch():
        pass
    assert await pending(engine) == 0  # no reader to keep entries for: nothing waits
    assert CAP // 2 <= await redis.xlen(TOPIC) <= CAP + database.outbox.batch_size
    newest = {entry["id"] for entry in await read_stream(redis)}
    assert newest <= set(ids)
