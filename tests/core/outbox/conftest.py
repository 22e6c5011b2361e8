"""Fixtures for the outbox tests: events written straight into the table, publishers, reads."""

import json
import uuid
from collections.abc import Iterable

from cloudevents.v1.http import CloudEvent, from_json
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox.tables import OutboxEvent

TOPIC = "orders"


async def insert_events(engine: AsyncEngine, keys: Iterable[tuple[str, int]]) -> list[str]:
    """One committed event per (aggregate id, version), in the order given; their ids."""
    rows = [
        {
            "event_id": uuid.uuid4(),
            "source": "/services/orders",
            "type": "orders.order.note_changed.v1",
            "subject": f"order/{aggregate}",
            "topic": TOPIC,
            "aggregate_type": "order",
            "aggregate_id": aggregate,
            "aggregate_version": version,
            "data": {"order_id": aggregate, "note": f"v{version}"},
        }
        for aggregate, version in keys
    ]
    async with engine.begin() as connection:
        await connection.execute(insert(OutboxEvent), rows)
    return [str(row["event_id"]) for row in rows]


async def pending(engine: AsyncEngine) -> int:
    """Events still in the outbox."""
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(OutboxEvent)) or 0


async def read_stream(redis: Redis, stream: str = TOPIC) -> list[dict[str, str]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(stream)  # type: ignore[assignment]
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def versions_by_aggregate(entries: list[dict[str, str]]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for entry in entries:
        seen.setdefault(entry["partitionkey"], []).append(int(entry["sequence"]))
    return seen


def strictly_parsed(entry: dict[str, str]) -> CloudEvent:
    """The stream entry as the CloudEvents SDK's strict parser reads it (structured mode)."""
    structured = {k: v for k, v in entry.items() if k != "data"}
    return from_json(json.dumps({**structured, "data": json.loads(entry["data"])}))
