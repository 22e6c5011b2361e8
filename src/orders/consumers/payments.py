"""The payments service's events: a successful payment confirms the order, a failed one
cancels it. Each effect and its inbox row commit together, so a redelivery changes nothing."""

import uuid
from decimal import Decimal
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.events import CloudEvent, EventPayload, EventRegistry
from core.handling import Handler
from core.outbox.writer import OutboxWriter
from core.unit_of_work import InboxEntry
from orders.services.orders import OrderService
from orders.unit_of_work import OrdersUnitOfWork


class PaymentEvent(EventPayload):
    topic: ClassVar[str] = "payments"
    aggregate_type: ClassVar[str] = "payment"

    payment_id: uuid.UUID
    order_id: uuid.UUID


class PaymentSucceeded(PaymentEvent):
    name: ClassVar[str] = "payment.succeeded"

    amount: Decimal
    currency: str


class PaymentFailed(PaymentEvent):
    name: ClassVar[str] = "payment.failed"

    reason: str


# The payments service owns these types; we only read them.
PAYMENT_EVENTS = EventRegistry("payments", (PaymentSucceeded, PaymentFailed))


class PaymentHandlers:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        consumer: str,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._consumer = consumer

    def by_type(self) -> dict[str, Handler]:
        return {
            PAYMENT_EVENTS.type_of(PaymentSucceeded): self.payment_succeeded,
            PAYMENT_EVENTS.type_of(PaymentFailed): self.payment_failed,
        }

    async def payment_succeeded(self, event: CloudEvent) -> None:
        payment = PaymentSucceeded.model_validate(event.data)
        await self._service(event).confirm_order(payment.order_id, if_match=None)

    async def payment_failed(self, event: CloudEvent) -> None:
        payment = PaymentFailed.model_validate(event.data)
        await self._service(event).cancel_order(
            payment.order_id, if_match=None, reason="payment_failed"
        )

    def _service(self, event: CloudEvent) -> OrderService:
        inbox = InboxEntry(self._consumer, event.source, event.id)
        return OrderService(OrdersUnitOfWork(self._session_factory, self._outbox, inbox))
