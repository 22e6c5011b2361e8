"""An in-memory unit of work: the persistence boundary faked with small real classes."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

from core.events import EventPayload
from core.outbox.writer import Aggregate
from orders.models import Order
from orders.repositories.orders import OrderRepository
from orders.schemas.orders import OrderFilters, OrderSummary
from orders.unit_of_work import OrdersUnitOfWork


class InMemoryOrderRepository(OrderRepository):
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Order] = {}
        self.pending: list[Order] = []

    async def get(self, order_id: uuid.UUID) -> Order | None:
        return self.rows.get(order_id)

    def add(self, order: Order) -> None:
        self.pending.append(order)

    async def list_page(self, filters: OrderFilters) -> tuple[list[OrderSummary], int]:
        raise NotImplementedError  # listing is a query: tested on PostgreSQL


class InMemoryUnitOfWork(OrdersUnitOfWork):
    orders: InMemoryOrderRepository

    def __init__(self) -> None:
        self.orders = InMemoryOrderRepository()
        self.commits = 0
        self.recorded: list[EventPayload] = []
        self.published: list[EventPayload] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.orders.pending.clear()  # what was not committed is gone
        self.recorded.clear()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Self]:
        yield self

    def add_event(self, aggregate: Aggregate, payload: EventPayload) -> None:  # noqa: ARG002
        self.recorded.append(payload)

    async def commit(self, result: object = None) -> None:  # noqa: ARG002
        for order in self.orders.pending:
            order.version_id = order.version_id or 1
            self.orders.rows[order.id] = order
        self.orders.pending.clear()
        self.published.extend(self.recorded)
        self.recorded.clear()
        self.commits += 1
