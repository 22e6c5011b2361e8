"""Outbox benchmark: backlog drain rate and commit-to-publish latency, against the targets.

Runs on the local PostgreSQL (a database of its own) and a throwaway redis-server:
1. drain: 20,000 committed events over 1,000 aggregates, one publisher, batch 100; the rate is
   events per second of wall time, and every aggregate's events must arrive in version order;
2. latency: after a VACUUM (a steady state, not the aftermath of the backlog), a producer
   commits 500 events/s (one per transaction, as requests do) while the publisher runs as its
   own process with the default settings (no NOTIFY, 20 ms polling): a warm-up until the
   publisher has started and caught up, then 10 s measured; latency is the Redis entry's
   timestamp (the moment the broker took it) minus the moment the producer's commit returned;
3. claim cost: the mean `outbox_claim_seconds` while one publisher drains 5,000 events, first
   alone, then behind 200,000 events of 2,000 aggregates held by dead events. Those are
   written after their holds began, so the publisher's first claims park them; the figure is
   the steady state after that, once VACUUM has removed the parked rows' old versions (as
   autovacuum does within a minute).
"""

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine
from tests.support import RedisServer, drop_database, service_env

from core.database import build_engine
from core.metrics import OutboxMetrics
from core.outbox.broker import RedisStreamsBroker
from core.outbox.publisher import OutboxPublisher
from core.outbox.tables import OutboxEvent
from orders.cli import migrate
from orders.settings import OrdersSettings

BACKLOG, AGGREGATES = 20_000, 1_000
RATE, SECONDS = 500, 10
# Not measured: the publisher's start, and its first polls (an idle publisher polls once a
# second without NOTIFY, so the first events after a quiet spell wait up to that long). The
# target is about the steady state after them: the warm-up lasts at least WARM_UP seconds and
# until the stream holds every event but those of the last LAG (50 ms), checked every
# CATCH_UP_EVERY events; a publisher that never catches up is measured after WARM_UP_LIMIT.
WARM_UP, WARM_UP_LIMIT = 1, 60
LAG, CATCH_UP_EVERY = RATE // 20, 25
DRAIN_TARGET, P50_TARGET, P99_TARGET = 10_000, 0.025, 0.025
READY, HELD, HELD_AGGREGATES = 5_000, 200_000, 2_000
# A claim may cost a little more behind a held backlog (a larger index), not in proportion.
CLAIM_RATIO_TARGET = 2.0

# One statement each, so seeding 200,000 rows takes a second, not a minute.
_SEED_HELD = text("""
INSERT INTO outbox_events (event_id, source, type, subject, topic, aggregate_type, aggregate_id,
    aggregate_version, data)
SELECT gen_random_uuid(), '/services/orders',
    'orders.order.note_changed.v1', 'order/held' || a,
    'orders', 'order', 'held' || a, v, '{"note": "held"}'
FROM generate_series(1, :versions) v, generate_series(1, :aggregates) a
""")
_HOLD_THEM = text("""
INSERT INTO outbox_key_holds (aggregate_type, aggregate_id, until, reason)
SELECT 'order', 'held' || a, 'infinity', 'dead event' FROM generate_series(1, :aggregates) a
""")
_ANY_AVAILABLE = text("SELECT EXISTS (SELECT 1 FROM outbox_events WHERE available_at <= now())")


def row(aggregate: int, version: int) -> dict[str, object]:
    order_id = str(uuid.UUID(int=aggregate))
    return {
        "event_id": uuid.uuid4(),
        "source": "/services/orders",
        "type": "orders.order.lines_changed.v1",
        "subject": f"order/{order_id}",
        "topic": "orders",
        "aggregate_type": "order",
        "aggregate_id": order_id,
        "aggregate_version": version,
        "data": {
            "order_id": order_id,
            "total": "44.98",
            "note": None,
            "lines": [{"sku": "SKU-1001", "quantity": 2, "unit_price": "19.99"}] * 3,
        },
    }


STREAM_PAGE = 2000


async def stream(redis: Redis) -> list[tuple[str, dict[str, str]]]:
    """The whole stream, a page at a time: one XRANGE of it outlasts a socket timeout."""
    found: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(  # type: ignore[assignment]
            "orders", min=start, count=STREAM_PAGE
        )
        found += [
            (entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
            for entry_id, fields in page
        ]
        if len(page) < STREAM_PAGE:
            return found
        start = "(" + page[-1][0].decode()  # exclusive: after the last one read


async def drain(settings: OrdersSettings, engine: AsyncEngine, redis: Redis) -> tuple[float, int]:
    await seed(
        engine, [row(a, v) for v in range(1, BACKLOG // AGGREGATES + 1) for a in range(AGGREGATES)]
    )
    publisher = new_publisher(settings, engine, redis)
    started = time.perf_counter()
    published = 0
    while batch := await publisher.publish_batch():
        published += batch
    elapsed = time.perf_counter() - started
    versions: dict[str, list[int]] = {}
    for _, fields in await stream(redis):
        versions.setdefault(fields["partitionkey"], []).append(int(fields["sequence"]))
    violations = sum(v != sorted(v) for v in versions.values())
    return published / elapsed, violations


async def seed(engine: AsyncEngine, events: list[dict[str, object]]) -> None:
    async with engine.begin() as connection:
        for start in range(0, len(events), 5000):
            await connection.execute(insert(OutboxEvent), events[start : start + 5000])


def new_publisher(
    settings: OrdersSettings,
    engine: AsyncEngine,
    redis: Redis,
    registry: CollectorRegistry | None = None,
) -> OutboxPublisher:
    broker = RedisStreamsBroker(redis, maxlen=1_000_000, timeout_seconds=5)
    metrics = OutboxMetrics(registry or CollectorRegistry())
    return OutboxPublisher(engine, broker, settings.outbox, metrics)


async def mean_claim(settings: OrdersSettings, engine: AsyncEngine, redis: Redis) -> float:
    """Mean claim time while one publisher drains READY fresh events."""
    await seed(engine, [row(a, v) for v in range(1, 11) for a in range(READY // 10)])
    registry = CollectorRegistry()
    publisher = new_publisher(settings, engine, redis, registry)
    while await publisher.publish_batch():
        pass
    total = registry.get_sample_value("outbox_claim_seconds_sum") or 0.0
    return total / (registry.get_sample_value("outbox_claim_seconds_count") or 1.0)


async def vacuum(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE outbox_events"))


async def claim_costs(
    settings: OrdersSettings, engine: AsyncEngine, redis: Redis
) -> tuple[float, float]:
    """The mean claim with no held backlog, then behind HELD held events."""
    alone = await mean_claim(settings, engine, redis)
    async with engine.begin() as connection:
        per_aggregate = {"versions": HELD // HELD_AGGREGATES, "aggregates": HELD_AGGREGATES}
        await connection.execute(text("SET LOCAL statement_timeout = '5min'"))  # a busy machine
        await connection.execute(_SEED_HELD, per_aggregate)
        await connection.execute(_HOLD_THEM, per_aggregate)
    publisher = new_publisher(settings, engine, redis)
    for _ in range(HELD_AGGREGATES):  # a bound: each claim parks up to a batch of aggregates
        async with engine.connect() as connection:
            if not await connection.scalar(_ANY_AVAILABLE):
                break
        await publisher.publish_batch()
    await vacuum(engine)
    behind_held = await mean_claim(settings, engine, redis)
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE outbox_events, outbox_key_holds"))
    return alone, behind_held


async def latency(settings: OrdersSettings, engine: AsyncEngine, redis: Redis) -> list[float]:
    publisher = subprocess.Popen(  # noqa: ASYNC220 - our own command, started once
        [sys.executable, "-m", "orders", "publish"],
        env=service_env(settings, ORDERS_LOGGING__LEVEL="WARNING"),
    )
    committed: dict[str, float] = {}
    try:
        start, n, measured_from = time.perf_counter(), 0, 0
        while not measured_from or n < measured_from + RATE * SECONDS:
            event = row(AGGREGATES + n % 100, BACKLOG + n)
            async with engine.begin() as connection:
                await connection.execute(insert(OutboxEvent), [event])
            if measured_from:
                committed[str(event["event_id"])] = time.time()
            elif n % CATCH_UP_EVERY == 0 and await warmed_up(redis, n, start):
                measured_from = n + 1
            n += 1
            await asyncio.sleep(max(0.0, start + n / RATE - time.perf_counter()))
        await asyncio.sleep(2)
    finally:
        publisher.terminate()
        publisher.wait()
    delays = []
    for entry_id, fields in await stream(redis):
        event_id = fields["id"]
        if event_id in committed:
            broker_time = int(entry_id.split("-")[0]) / 1000
            delays.append(max(0.0, broker_time - committed[event_id]))
    return delays


async def warmed_up(redis: Redis, committed: int, start: float) -> bool:
    """The publisher started and caught up with the producer (or never will): the steady state."""
    elapsed = time.perf_counter() - start
    if elapsed < WARM_UP:
        return False
    return elapsed >= WARM_UP_LIMIT or await redis.xlen("orders") >= committed + 1 - LAG


@dataclass
class Figures:
    rate: float
    violations: int
    delays: list[float]
    claim_alone: float
    claim_behind_held: float


async def measure(settings: OrdersSettings) -> Figures:
    engine = build_engine(settings.database)
    redis = Redis.from_url(settings.redis.url.get_secret_value())
    try:
        rate, violations = await drain(settings, engine, redis)
        claims = await claim_costs(settings, engine, redis)
        await redis.delete("orders")
        # The latency run measures a steady state: without the drained backlogs' dead rows.
        await vacuum(engine)
        delays = sorted(await latency(settings, engine, redis))
        return Figures(rate, violations, delays, *claims)
    finally:
        await redis.aclose()
        await engine.dispose()


def main() -> None:
    base = OrdersSettings()
    with tempfile.TemporaryDirectory() as scratch:
        server = RedisServer(Path(scratch))
        server.start()
        database = base.database.model_copy(update={"name": f"orders_bench_{uuid.uuid4().hex[:6]}"})
        redis_settings = base.redis.model_copy(update={"url": SecretStr(server.url)})
        settings = base.model_copy(update={"database": database, "redis": redis_settings})
        migrate(settings)
        try:
            figures = asyncio.run(measure(settings))
        finally:
            drop_database(settings)
            server.stop()
    print(report(figures))  # noqa: T201


def report(figures: Figures) -> str:
    rate, violations, delays = figures.rate, figures.violations, figures.delays
    p50 = statistics.median(delays)
    p99 = delays[int(len(delays) * 0.99) - 1]
    samples = len(delays)
    alone, held = figures.claim_alone, figures.claim_behind_held
    rows = [
        (
            f"drain {BACKLOG:,} events, one publisher",
            f"{rate:,.0f} events/s",
            f">= {DRAIN_TARGET:,}",
            rate >= DRAIN_TARGET,
        ),
        ("per-aggregate order violations", str(violations), "0", violations == 0),
        (
            f"claim behind {HELD:,} held events / with none",
            f"{held * 1000:.1f} ms / {alone * 1000:.1f} ms = {held / alone:.2f}x",
            f"<= {CLAIM_RATIO_TARGET:.0f}x",
            held / alone <= CLAIM_RATIO_TARGET,
        ),
        (
            f"commit-to-publish p50 at {RATE}/s ({samples:,} events)",
            f"{p50 * 1000:.1f} ms",
            f"<= {P50_TARGET * 1000:.0f} ms",
            p50 <= P50_TARGET,
        ),
        (
            f"commit-to-publish p99 at {RATE}/s",
            f"{p99 * 1000:.1f} ms",
            f"<= {P99_TARGET * 1000:.0f} ms",
            p99 <= P99_TARGET,
        ),
    ]
    lines = ["| measure | result | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {m} | {r} | {t} | {'meets' if ok else 'MISSES'} |" for m, r, t, ok in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
