"""Holds against races on real PostgreSQL and Redis: no event of a held aggregate is published,
whatever another publisher commits while a claim runs."""

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from core.database import build_engine
from core.metrics import OutboxMetrics
from core.outbox.broker import RedisStreamsBroker
from core.outbox.publisher import OutboxPublisher
from orders.settings import OrdersSettings
from tests.conftest import NewPublisher
from tests.core.outbox.conftest import (
    Refusals,
    StrainedBroker,
    insert_events,
    pending,
    read_stream,
    versions_by_aggregate,
)

# What publisher A commits when the broker refuses K v1: for good (the `block` policy buries it
# and holds K until an operator acts), or for now (K backs off).
_BURY = text("""
WITH dead AS (DELETE FROM outbox_events WHERE event_id = :event_id RETURNING *)
INSERT INTO outbox_dead_events (id, event_id, source, type, subject, topic, aggregate_type,
    aggregate_id, aggregate_version, data, occurred_at, attempts, last_error, dead_reason)
SELECT id, event_id, source, type, subject, topic, aggregate_type, aggregate_id,
    aggregate_version, data, occurred_at, 1, 'refused', 'refused permanently'
FROM dead
""")
_FAIL = text(
    "UPDATE outbox_events SET attempts = 1, last_error = 'refused' WHERE event_id = :event_id"
)
_HOLD = text("""
INSERT INTO outbox_key_holds (aggregate_type, aggregate_id, until, reason)
VALUES ('order', 'K',
    CASE WHEN :forever THEN 'infinity'::timestamptz ELSE now() + interval '30 seconds' END,
    'refused')
""")
OUTCOMES = {"dead": (_BURY, True), "backing off": (_FAIL, False)}


def commit_after_lock_statement(
    engine: AsyncEngine, other: AsyncEngine, outcome: str, event_id: str
) -> None:
    """Commit A's outcome for K v1 on another connection as soon as B's lock statement returns.

    In the race A commits inside B's lock statement, after its snapshot and before it tries
    K's lock; PostgreSQL offers no way to pause a statement there, so A's commit lands at the
    first point after it: B then holds K's lock and has not loaded yet, as in the race.
    """
    fired = False

    def commit_a(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal fired
        if fired or "pg_try_advisory_xact_lock" not in statement:
            return
        fired = True
        await_(commit(other, outcome, event_id))

    event.listen(engine.sync_engine, "after_cursor_execute", commit_a)


async def commit(other: AsyncEngine, outcome: str, event_id: str) -> None:
    statement, forever = OUTCOMES[outcome]
    async with other.begin() as connection:
        await connection.execute(statement, {"event_id": event_id})
        await connection.execute(_HOLD, {"forever": forever})


@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_a_hold_committed_during_a_claim_keeps_the_aggregate_back(
    engine: AsyncEngine, redis: Redis, database: OrdersSettings, outcome: str
) -> None:
    first, _ = await insert_events(engine, [("K", 1), ("K", 2)])
    await insert_events(engine, [("other", 1)])
    claiming = build_engine(database.database)  # publisher B's, hooked
    commit_after_lock_statement(claiming, engine, outcome, first)
    broker = RedisStreamsBroker(redis, maxlen=database.outbox.stream_maxlen, timeout_seconds=2)
    metrics = OutboxMetrics(CollectorRegistry())
    publisher_b = OutboxPublisher(claiming, broker, database.outbox, metrics)
    try:
        await publisher_b.publish_batch()
    finally:
        await claiming.dispose()
    assert versions_by_aggregate(await read_stream(redis)) == {"other": [1]}
    assert await pending(engine) == (1 if outcome == "dead" else 2)  # K waits


def rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan's scans of `table` read: those they returned and those they filtered out."""
    read = 0
    if plan.get("Relation Name") == table:
        returned = plan["Actual Rows"] * plan["Actual Loops"]
        read += returned + plan.get("Rows Removed by Filter", 0)
    return read + sum(rows_read(child, table) for child in plan.get("Plans", []))


async def test_a_claim_reads_no_rows_of_held_aggregates(
    engine: AsyncEngine, new_publisher: NewPublisher
) -> None:
    """Thousands of events wait behind dead ones; each poll still reads only the ready rows."""
    await insert_events(engine, [(f"held{k}", v) for v in range(1, 101) for k in range(30)])
    async with engine.begin() as connection:
        await connection.execute(
            text("""INSERT INTO outbox_key_holds (aggregate_type, aggregate_id, until, reason)
            SELECT 'order', 'held' || k, 'infinity', 'dead event' FROM generate_series(0, 29) k""")
        )
    await insert_events(engine, [(f"ready{k}", 1) for k in range(5)])
    publisher = new_publisher()
    assert await publisher.publish_batch() + await publisher.publish_batch() == 5
    await insert_events(engine, [(f"ready{k}", 2) for k in range(5)])

    claims: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "pg_try_advisory_xact_lock" in statement:
            claims.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", keep)
    assert await publisher.publish_batch() == 5
    event.remove(engine.sync_engine, "before_cursor_execute", keep)
    statement, parameters = claims[0]
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        explain = f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}"
        [plan] = await raw.fetchval(explain, *parameters)  # asyncpg decodes the JSON
    assert rows_read(plan["Plan"], "outbox_events") <= 5


_WAITING_TO_FORGET = text("""
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM outbox_key_holds%'
""")


async def test_forgetting_expired_holds_never_deadlocks_a_batch_that_sets_holds(
    engine: AsyncEngine, new_publisher: NewPublisher, redis: Redis, database: OrdersSettings
) -> None:
    """Publisher A's batch holds K1 and K2 again, whose last holds are over; publisher B
    forgets the expired holds in between. Were B to wait for A's K1 while it has K2, the two
    would deadlock, and a batch rolled back after publishing publishes its events again."""
    await insert_events(engine, [("K1", 1), ("K2", 1), ("other", 1)])
    async with engine.begin() as connection:  # K2's row first, so a scan reaches it first
        for key in ("K2", "K1"):
            await connection.execute(
                text("""INSERT INTO outbox_key_holds (aggregate_type, aggregate_id, until, reason)
                VALUES ('order', :key, now() - interval '1 second', 'refused')"""),
                {"key": key},
            )
    publisher_b = new_publisher()
    forgetting: list[asyncio.Task[None]] = []

    async def forget_while_k1_is_held() -> None:
        forgetting.append(asyncio.create_task(publisher_b.refresh_gauges()))
        deadline = time.monotonic() + 60  # a bound on the loop, not a speed goal
        while not forgetting[0].done():
            async with engine.connect() as connection:
                if await connection.scalar(_WAITING_TO_FORGET):
                    return  # B waits for A: A goes on to K2
            assert time.monotonic() < deadline, "B neither finished nor waited"
            await asyncio.sleep(0.01)

    def after_k1s_hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not forgetting and "INSERT INTO outbox_key_holds" in statement:
            await_(forget_while_k1_is_held())

    batching = build_engine(database.database)  # publisher A's, hooked
    event.listen(batching.sync_engine, "after_cursor_execute", after_k1s_hold)
    refusals = Refusals(transient={("K1", 1), ("K2", 1)}, permanent=set())
    broker = StrainedBroker(
        RedisStreamsBroker(redis, maxlen=database.outbox.stream_maxlen, timeout_seconds=2),
        refusals,
    )
    publisher_a = OutboxPublisher(
        batching, broker, database.outbox, OutboxMetrics(CollectorRegistry())
    )
    try:
        assert await publisher_a.publish_batch() == 1
        await forgetting[0]
    finally:
        await batching.dispose()
    assert versions_by_aggregate(await read_stream(redis)) == {"other": [1]}
    assert await pending(engine) == 2  # K1 and K2 back off, held again
    async with engine.connect() as connection:
        held = await connection.scalar(
            text("SELECT count(*) FROM outbox_key_holds WHERE until > now()")
        )
    assert held == 2
