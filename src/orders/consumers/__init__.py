"""Handlers for events other services publish; like routes, they call the services.

The consumer process, the catalogue and `orders dead-letters` learn from here what is read.
"""

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.events import EventRegistry
from core.handling import Handler
from core.outbox.writer import OutboxWriter
from orders.consumers.payments import PAYMENT_EVENTS, PaymentHandlers
from orders.settings import OrdersSettings

# The event types we read, as their publishers define them (docs/events/asyncapi.json).
RECEIVED_EVENTS: tuple[EventRegistry, ...] = (PAYMENT_EVENTS,)


def consumed_streams(settings: OrdersSettings) -> list[str]:
    return [settings.payments_stream]


def event_handlers(
    session_factory: async_sessionmaker[AsyncSession], outbox: OutboxWriter, group: str
) -> dict[str, Handler]:
    """The handler of each event type read from `consumed_streams`."""
    return PaymentHandlers(session_factory, outbox, group).by_type()
