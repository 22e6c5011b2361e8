"""Handlers for events other services publish; like routes, they call the services.

The consumer process, the catalogue and `orders dead-letters` learn from here what is read:
none yet. Add a handler module, its publisher's registry to RECEIVED_EVENTS, its stream to
`consumed_streams` and its handlers to `event_handlers`.
"""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.events import EventRegistry
from core.handling import Handler
from core.outbox.writer import OutboxWriter
from orders.settings import OrdersSettings

# The event types we read, as their publishers define them (docs/events/asyncapi.json).
RECEIVED_EVENTS: tuple[EventRegistry, ...] = ()


def consumed_streams(_settings: OrdersSettings) -> list[str]:
    return []


def event_handlers(
    _session_factory: async_sessionmaker[AsyncSession], _outbox: OutboxWriter, _group: str
) -> dict[str, Handler]:
    """The handler of each event type read from `consumed_streams`."""
    return {}
