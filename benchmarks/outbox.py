"""Outbox benchmark: backlog drain rate and commit-to-publish latency, against the targets.

Runs on the local PostgreSQL (a database of its own) and a throwaway redis-server:
1. drain: 20,000 committed events over 1,000 aggregates, one publisher, batch 100; the rate is
   events per second of wall time, and every aggregate's events must arrive in version order;
2. latency: after a VACUUM (a steady state, not the aftermath of the backlog), a producer
   commits 500 events/s (one per transaction, as requests do) for 1 s of warm-up and 10 s
   measured, while the publisher runs as its own process with the default settings (no
   NOTIFY, 20 ms polling); latency is the Redis entry's timestamp (the moment the broker took
   it) minus the moment the producer's commit returned.
"""

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
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
# Not measured: an idle publisher polls once a second (without NOTIFY), so the first events
# after a quiet spell wait up to that long; the target is about the steady state after it.
WARM_UP = 1
DRAIN_TARGET, P50_TARGET, P99_TARGET = 5_000, 0.025, 0.100


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
    rows = [row(a, v) for v in range(1, BACKLOG // AGGREGATES + 1) for a in range(AGGREGATES)]
    async with engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            await connection.execute(insert(OutboxEvent), rows[start : start + 5000])
    broker = RedisStreamsBroker(redis, maxlen=1_000_000, timeout_seconds=5)
    publisher = OutboxPublisher(engine, broker, settings.outbox, OutboxMetrics(CollectorRegistry()))
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


async def latency(settings: OrdersSettings, engine: AsyncEngine, redis: Redis) -> list[float]:
    publisher = subprocess.Popen(  # noqa: ASYNC220 - our own command, started once
        [sys.executable, "-m", "orders", "publish"],
        env=service_env(settings, ORDERS_LOGGING__LEVEL="WARNING"),
    )
    committed: dict[str, float] = {}
    try:
        await asyncio.sleep(3)  # started and polling
        start = time.perf_counter()
        for n in range(RATE * (WARM_UP + SECONDS)):
            event = row(AGGREGATES + n % 100, BACKLOG + n)
            async with engine.begin() as connection:
                await connection.execute(insert(OutboxEvent), [event])
            if n >= RATE * WARM_UP:
                committed[str(event["event_id"])] = time.time()
            await asyncio.sleep(max(0.0, start + (n + 1) / RATE - time.perf_counter()))
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


async def measure(settings: OrdersSettings) -> tuple[float, int, list[float]]:
    engine = build_engine(settings.database)
    redis = Redis.from_url(settings.redis.url.get_secret_value())
    try:
        rate, violations = await drain(settings, engine, redis)
        await redis.delete("orders")
        # The latency run measures a steady state: without the drained backlog's dead rows.
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE outbox_events"))
        return rate, violations, sorted(await latency(settings, engine, redis))
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
            rate, violations, delays = asyncio.run(measure(settings))
        finally:
            drop_database(settings)
            server.stop()
    p50 = statistics.median(delays)
    p99 = delays[int(len(delays) * 0.99) - 1]
    print(report(rate, violations, p50, p99, len(delays)))  # noqa: T201


def report(rate: float, violations: int, p50: float, p99: float, samples: int) -> str:
    rows = [
        (
            f"drain {BACKLOG:,} events, one publisher",
            f"{rate:,.0f} events/s",
            f">= {DRAIN_TARGET:,}",
            rate >= DRAIN_TARGET,
        ),
        ("per-aggregate order violations", str(violations), "0", violations == 0),
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
