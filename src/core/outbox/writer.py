"""The write side: turns recorded events into outbox rows inside the business transaction."""

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import new_id
from core.events import EventPayload, EventRegistry, check_size, current_trace_context
from core.outbox.tables import OutboxEvent
from core.settings import EventsSettings

NOTIFY_CHANNEL = "outbox"


class Aggregate(Protocol):
    """What an event is about: its id, and its version once the change is flushed."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def version_id(self) -> int | None: ...  # None until a new aggregate is flushed


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    aggregate: Aggregate
    version_before: int | None
    payload: EventPayload
    data: dict[str, Any]
    traceparent: str | None
    tracestate: str | None


class OutboxWriter:
    def __init__(self, registry: EventRegistry, settings: EventsSettings) -> None:
        self.registry = registry
        self.settings = settings

    def record(self, aggregate: Aggregate, payload: EventPayload) -> RecordedEvent:
        """Check the event now, so a bad one fails the request rather than the publisher."""
        self.registry.type_of(type(payload))
        data = payload.model_dump(mode="json")
        check_size(data)
        traceparent, tracestate = current_trace_context()
        version = aggregate.version_id
        return RecordedEvent(aggregate, version, payload, data, traceparent, tracestate)

    async def write(self, session: AsyncSession, events: list[RecordedEvent]) -> None:
        """Insert the rows; versions are read now, after the flush that bumped them."""
        for event in events:
            if event.aggregate.version_id in {None, event.version_before}:
                # Its sequence would repeat the last event's: a change must bump the version.
                msg = f"{type(event.payload).__name__} recorded for an unchanged aggregate"
                raise RuntimeError(msg)
        rows = [self._row(event) for event in events]
        await session.execute(insert(OutboxEvent), rows)
        if self.settings.notify:
            # An empty payload: the listener only needs a nudge; the table is the truth.
            await session.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL}
            )

    def _row(self, event: RecordedEvent) -> dict[str, Any]:
        payload = type(event.payload)
        event_type = self.registry.type_of(payload)
        aggregate_id = str(event.aggregate.id)
        return {
            "event_id": new_id(),
            "source": self.settings.source,
            "type": event_type,
            "subject": f"{payload.aggregate_type}/{aggregate_id}",
            "topic": payload.topic,
            "aggregate_type": payload.aggregate_type,
            "aggregate_id": aggregate_id,
            "aggregate_version": event.aggregate.version_id,
            "data": event.data,
            "dataschema": f"{self.settings.schema_base}{event_type}",
            "traceparent": event.traceparent,
            "tracestate": event.tracestate,
        }
