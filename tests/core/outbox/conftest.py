"""Fixtures for the outbox tests: events written straight into the table, publishers, reads."""

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cloudevents.v1.http import CloudEvent as ParsedEvent
from cloudevents.v1.http import from_json
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import CloudEvent
from core.outbox.broker import (
    BrokerUnavailableError,
    MessageBroker,
    PermanentPublishError,
    PublishError,
)
from core.outbox.publisher import OutboxPublisher
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


async def refusal(publisher: OutboxPublisher, batches: int) -> BrokerUnavailableError:
    """Publish batch after batch until the broker refuses one; fails if it never does."""
    for _ in range(batches):
        try:
            await publisher.publish_batch()
        except BrokerUnavailableError as error:
            return error
    raise AssertionError(f"the broker took {batches} batches")


def versions_by_aggregate(entries: list[dict[str, str]]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for entry in entries:
        seen.setdefault(entry["partitionkey"], []).append(int(entry["sequence"]))
    return seen


def strictly_parsed(entry: dict[str, str]) -> ParsedEvent:
    """The stream entry as the CloudEvents SDK's strict parser reads it (structured mode)."""
    structured = {k: v for k, v in entry.items() if k != "data"}
    return from_json(json.dumps({**structured, "data": json.loads(entry["data"])}))


@dataclass
class Refusals:
    """Which events a strained broker refuses, shared by every publisher's adapter: each
    `(aggregate id, version)` in `transient` on its first `times` attempts, each in `permanent`
    once and for good. `attempts` keeps, per `(aggregate id, version)`, when each attempt came
    and whether it was refused."""

    transient: set[tuple[str, int]]
    permanent: set[tuple[str, int]]
    times: int = 2
    attempts: dict[tuple[str, int], list[tuple[float, bool]]] = field(default_factory=dict)

    def refuses(self, event: CloudEvent) -> PublishError | None:
        key = (event.partitionkey, int(event.sequence))
        tried = self.attempts.setdefault(key, [])
        error: PublishError | None = None
        if key in self.permanent and not tried:
            error = PermanentPublishError("refused for good by the test")
        elif key in self.transient and len(tried) < self.times:
            error = PublishError("refused for now by the test")
        tried.append((time.monotonic(), error is not None))
        return error


class StrainedBroker:
    """A real broker behind the refusals: what they let through goes to it."""

    def __init__(self, inner: MessageBroker, refusals: Refusals) -> None:
        self.inner = inner
        self.system = inner.system
        self.refusals = refusals

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        verdicts = [self.refusals.refuses(event) for _, event in messages]
        allowed = [m for m, verdict in zip(messages, verdicts, strict=True) if verdict is None]
        results = iter(await self.inner.publish(allowed))
        return [verdict or next(results) for verdict in verdicts]

    async def close(self) -> None:
        await self.inner.close()
