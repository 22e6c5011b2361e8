"""Events the service publishes: past tense, one per change of an aggregate."""

from core.events import EventPayload, EventRegistry

# Every event type the service publishes, resource by resource; the outbox refuses any other.
PUBLISHED_EVENTS: tuple[type[EventPayload], ...] = ()


def published_events(type_prefix: str) -> EventRegistry:
    return EventRegistry(type_prefix, PUBLISHED_EVENTS)
