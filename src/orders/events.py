"""Events the orders service publishes: past tense, one per change of an order."""

import uuid
from typing import ClassVar, Literal, Self

from pydantic import BaseModel

from core.events import EventPayload, EventRegistry
from orders.models import Order
from orders.schemas.orders import Money, Total


class OrderEvent(EventPayload):
    topic: ClassVar[str] = "orders"
    aggregate_type: ClassVar[str] = "order"

    order_id: uuid.UUID


class EventLine(BaseModel):
    sku: str
    quantity: int
    unit_price: Money


def _lines(order: Order) -> list[EventLine]:
    return [
        EventLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
        for line in order.lines
    ]


class OrderPlaced(OrderEvent):
    name: ClassVar[str] = "order.placed"

    customer_id: uuid.UUID
    currency: str
    total: Total
    lines: list[EventLine]

    @classmethod
    def of(cls, order: Order) -> Self:
        return cls(
            order_id=order.id,
            customer_id=order.customer_id,
            currency=order.currency,
            total=order.total,
            lines=_lines(order),
        )


class OrderLinesChanged(OrderEvent):
    name: ClassVar[str] = "order.lines_changed"

    total: Total
    lines: list[EventLine]
    note: str | None

    @classmethod
    def of(cls, order: Order) -> Self:
        return cls(order_id=order.id, total=order.total, lines=_lines(order), note=order.note)


class OrderNoteChanged(OrderEvent):
    name: ClassVar[str] = "order.note_changed"

    note: str | None


class OrderConfirmed(OrderEvent):
    name: ClassVar[str] = "order.confirmed"

    total: Total


class OrderCancelled(OrderEvent):
    name: ClassVar[str] = "order.cancelled"

    reason: Literal["requested", "payment_failed"]


ORDER_EVENTS = (OrderPlaced, OrderLinesChanged, OrderNoteChanged, OrderConfirmed, OrderCancelled)

# Every event type the service publishes, resource by resource; the outbox refuses any other.
PUBLISHED_EVENTS: tuple[type[EventPayload], ...] = (*ORDER_EVENTS,)


def published_events(type_prefix: str) -> EventRegistry:
    return EventRegistry(type_prefix, PUBLISHED_EVENTS)
