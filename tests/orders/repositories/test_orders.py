"""The order repository's queries on PostgreSQL."""

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_session_factory
from orders.models import Order, OrderLine, OrderStatus
from orders.schemas.orders import OrderFilters
from orders.unit_of_work import OrdersUnitOfWork


def record_statements(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return statements


async def store(engine: AsyncEngine, *orders: Order) -> None:
    async with OrdersUnitOfWork(build_session_factory(engine)) as uow:
        for order in orders:
            uow.orders.add(order)
        await uow.commit()


def order(customer: uuid.UUID, status: OrderStatus, *prices: str) -> Order:
    lines = [
        OrderLine(position=i, sku=f"SKU-{i}", quantity=2, unit_price=Decimal(price))
        for i, price in enumerate(prices)
    ]
    return Order(customer_id=customer, currency="EUR", status=status, note="n", lines=lines)


async def test_list_page_sums_totals_in_sql_and_selects_only_summary_columns(
    engine: AsyncEngine,
) -> None:
    customer = uuid.uuid4()
    await store(engine, order(customer, OrderStatus.PENDING, "1.25", "2.00"))
    await store(engine, order(customer, OrderStatus.CONFIRMED, "10.00"))
    statements = record_statements(engine)

    async with OrdersUnitOfWork(build_session_factory(engine)) as uow:
        page, total = await uow.orders.list_page(OrderFilters(customer_id=customer))

    assert total == 2
    assert [(s.status, s.total) for s in page] == [
        (OrderStatus.CONFIRMED, Decimal("20.00")),
        (OrderStatus.PENDING, Decimal("6.50")),
    ]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2  # the page and its count; lines never load
    assert all("orders.note" not in s and "order_lines.sku" not in s for s in selects)


async def test_get_loads_the_lines_in_position_order(engine: AsyncEngine) -> None:
    placed = order(uuid.uuid4(), OrderStatus.PENDING, "3.00", "1.00", "2.00")
    await store(engine, placed)
    async with OrdersUnitOfWork(build_session_factory(engine)) as uow:
        loaded = await uow.orders.get(placed.id)
    assert loaded is not None
    assert [line.unit_price for line in loaded.lines] == [
        Decimal(p) for p in ("3.00", "1.00", "2.00")
    ]
    assert loaded.total == Decimal("12.00")


async def test_an_order_without_lines_totals_zero_in_the_list(engine: AsyncEngine) -> None:
    customer = uuid.uuid4()
    await store(engine, order(customer, OrderStatus.PENDING))
    async with OrdersUnitOfWork(build_session_factory(engine)) as uow:
        page, _ = await uow.orders.list_page(OrderFilters(customer_id=customer))
    assert [s.total for s in page] == [Decimal(0)]
