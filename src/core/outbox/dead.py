"""Operator commands for dead events: list, show, replay into the outbox, or discard."""

import uuid
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.outbox.claim import LOCK_NAMESPACE
from core.outbox.tables import DeadEvent

# The hold a dead event put on its aggregate (`block` policy) goes with the decision, and the
# rows parked behind it come forward. Under the aggregate's publisher lock, waited for: a
# publisher that is parking them finishes first.
_LOCK = text("""
SELECT pg_advisory_xact_lock(:namespace, hashtext(aggregate_type || ':' || aggregate_id))
FROM outbox_dead_events WHERE event_id = :event_id
""")
_RELEASE = text("""
WITH dead AS (
    SELECT aggregate_type, aggregate_id FROM outbox_dead_events WHERE event_id = :event_id
),
released AS (
    DELETE FROM outbox_key_holds h USING dead
    WHERE h.aggregate_type = dead.aggregate_type AND h.aggregate_id = dead.aggregate_id
)
UPDATE outbox_events o SET available_at = now() FROM dead
WHERE o.aggregate_type = dead.aggregate_type AND o.aggregate_id = dead.aggregate_id
    AND o.available_at > now()
""")

_REPLAY = text("""
WITH revived AS (DELETE FROM outbox_dead_events WHERE event_id = :event_id RETURNING *)
INSERT INTO outbox_events (event_id, source, type, subject, topic, aggregate_type, aggregate_id,
    aggregate_version, data, dataschema, traceparent, tracestate, occurred_at)
SELECT event_id, source, type, subject, topic, aggregate_type, aggregate_id, aggregate_version,
    data, dataschema, traceparent, tracestate, occurred_at
FROM revived
RETURNING event_id
""")


async def release(connection: AsyncConnection, event_id: uuid.UUID) -> None:
    await connection.execute(_LOCK, {"namespace": LOCK_NAMESPACE, "event_id": event_id})
    await connection.execute(_RELEASE, {"event_id": event_id})


async def list_dead_events(engine: AsyncEngine, limit: int = 100) -> list[dict[str, Any]]:
    columns = (
        DeadEvent.event_id,
        DeadEvent.type,
        DeadEvent.aggregate_type,
        DeadEvent.aggregate_id,
        DeadEvent.aggregate_version,
        DeadEvent.attempts,
        DeadEvent.dead_at,
        DeadEvent.dead_reason,
    )
    async with engine.connect() as connection:
        rows = await connection.execute(select(*columns).order_by(DeadEvent.dead_at).limit(limit))
        return [dict(row) for row in rows.mappings()]


async def show_dead_event(engine: AsyncEngine, event_id: uuid.UUID) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (
            (
                await connection.execute(
                    select(DeadEvent.__table__).where(DeadEvent.event_id == event_id)
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def replay_dead_event(engine: AsyncEngine, event_id: uuid.UUID) -> bool:
    """Move the event back to the outbox with fresh attempts; its aggregate resumes after it."""
    async with engine.begin() as connection:
        await release(connection, event_id)
        return (await connection.execute(_REPLAY, {"event_id": event_id})).first() is not None


async def discard_dead_event(engine: AsyncEngine, event_id: uuid.UUID) -> bool:
    """Drop the event for good; its aggregate's later events flow again."""
    async with engine.begin() as connection:
        await release(connection, event_id)
        result = await connection.execute(delete(DeadEvent).where(DeadEvent.event_id == event_id))
        return bool(result.rowcount)
