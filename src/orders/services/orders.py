"""Order use cases: the business rules, each in one transaction with the event it records."""

import uuid
from collections.abc import Callable
from typing import Literal, Protocol

import structlog
from sqlalchemy import func

from core.database import new_id
from core.events import EventPayload
from core.http import check_if_match
from core.pagination import Page
from orders.clients.customers import Customer
from orders.errors import (
    CustomerBlockedError,
    OrderNotFoundError,
    OrderStatusConflictError,
    OrderWithoutLinesError,
    UnknownCustomerError,
)
from orders.events import (
    OrderCancelled,
    OrderConfirmed,
    OrderLinesChanged,
    OrderNoteChanged,
    OrderPlaced,
)
from orders.models import Order, OrderLine, OrderStatus
from orders.schemas.orders import (
    OrderCreate,
    OrderFilters,
    OrderLineCreate,
    OrderSummary,
    OrderUpdate,
)
from orders.unit_of_work import OrdersUnitOfWork

log = structlog.get_logger(__name__)

CancelReason = Literal["requested", "payment_failed"]


class CustomerDirectory(Protocol):
    async def find(self, customer_id: uuid.UUID) -> Customer | None: ...


class OrderService:
    def __init__(self, uow: OrdersUnitOfWork, customers: CustomerDirectory | None = None) -> None:
        self.uow = uow
        self.customers = customers  # None: no customers service configured, no check

    async def place_order(self, payload: OrderCreate) -> Order:
        # Asked before the transaction opens: no database connection waits on the network.
        await self._check_customer(payload.customer_id)
        async with self.uow:
            order = Order(
                id=new_id(),
                customer_id=payload.customer_id,
                currency=payload.currency,
                note=payload.note,
                status=OrderStatus.PENDING,
                lines=_build_lines(payload.lines),
            )
            self.uow.orders.add(order)
            self.uow.add_event(order, OrderPlaced.of(order))
            await self.uow.commit(result=order)
        log.info("order.placed", order_id=str(order.id), total=str(order.total))
        return order

    async def get_order(self, order_id: uuid.UUID) -> Order:
        async with self.uow.reading():
            return await self._load(order_id)

    async def list_orders(self, filters: OrderFilters) -> Page[OrderSummary]:
        async with self.uow.reading():
            summaries, total = await self.uow.orders.list_page(filters)
        return Page[OrderSummary].of(summaries, total, filters)

    async def update_order(
        self, order_id: uuid.UUID, changes: OrderUpdate, if_match: str | None
    ) -> Order:
        async with self.uow:
            order = await self._load(order_id)
            check_if_match(if_match, order.version_id)
            if order.status is not OrderStatus.PENDING:
                raise OrderStatusConflictError(order.id, order.status, "change it")
            if not changes.model_fields_set:
                return order  # nothing to change: no new version, no event
            if "note" in changes.model_fields_set:
                order.note = changes.note
            event: EventPayload
            if changes.lines is not None:
                order.lines = _build_lines(changes.lines)
                event = OrderLinesChanged.of(order)
            else:
                event = OrderNoteChanged(order_id=order.id, note=order.note)
            _touch(order)
            self.uow.add_event(order, event)
            await self.uow.commit()
        log.info("order.updated", order_id=str(order.id), version=order.version_id)
        return order

    async def confirm_order(self, order_id: uuid.UUID, if_match: str | None) -> Order:
        order = await self._transition(
            order_id,
            if_match,
            OrderStatus.CONFIRMED,
            lambda order: OrderConfirmed(order_id=order.id, total=order.total),
        )
        log.info("order.confirmed", order_id=str(order.id), version=order.version_id)
        return order

    async def cancel_order(
        self, order_id: uuid.UUID, if_match: str | None, reason: CancelReason = "requested"
    ) -> Order:
        order = await self._transition(
            order_id,
            if_match,
            OrderStatus.CANCELLED,
            lambda order: OrderCancelled(order_id=order.id, reason=reason),
        )
        log.info("order.cancelled", order_id=str(order.id), version=order.version_id, reason=reason)
        return order

    async def _transition(
        self,
        order_id: uuid.UUID,
        if_match: str | None,
        target: OrderStatus,
        event: Callable[[Order], EventPayload],
    ) -> Order:
        # Both transitions start from pending: confirmed and cancelled orders are final.
        async with self.uow:
            order = await self._load(order_id)
            check_if_match(if_match, order.version_id)
            if order.status is not OrderStatus.PENDING:
                action = "confirm it" if target is OrderStatus.CONFIRMED else "cancel it"
                raise OrderStatusConflictError(order.id, order.status, action)
            order.status = target
            _touch(order)
            self.uow.add_event(order, event(order))
            await self.uow.commit(result=order)
        return order

    async def _check_customer(self, customer_id: uuid.UUID) -> None:
        if self.customers is None:
            return
        customer = await self.customers.find(customer_id)
        if customer is None:
            raise UnknownCustomerError(customer_id)
        if customer.blocked:
            raise CustomerBlockedError(customer_id)

    async def _load(self, order_id: uuid.UUID) -> Order:
        order = await self.uow.orders.get(order_id)
        if order is None:
            raise OrderNotFoundError(order_id)
        return order


def _build_lines(lines: list[OrderLineCreate]) -> list[OrderLine]:
    if not lines:
        raise OrderWithoutLinesError
    return [
        OrderLine(position=index, sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
        for index, line in enumerate(lines)
    ]


def _touch(order: Order) -> None:
    # Setting a column makes the UPDATE, and so the version check, happen even when only
    # the lines changed.
    order.updated_at = func.now()
