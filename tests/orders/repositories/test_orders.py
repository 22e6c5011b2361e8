"""The order repository's queries on PostgreSQL."""

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from orders.models import Order, OrderLine, OrderStatus
from orders.schemas.orders import OrderFilters
from tests.support import NewUow


def record_statements(engine: AsyncEngine) -> list[str]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    return statements


async def store(new_uow: NewUow, *orders: Order) -> None:
    async with new_uow() as uow:
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
    engine: AsyncEngine, new_uow: NewUow
) -> None:
    customer = uuid.uuid4()
    await store(new_uow, order(customer, OrderStatus.PENDING, "1.25", "2.00"))
    await store(new_uow, order(customer, OrderStatus.CONFIRMED, "10.00"))
    statements = record_statements(engine)

    async with new_uow() as uow:
        page, total = await uow.orders.list_page(OrderFilters(customer_id=customer))

    assert total == 2
    assert [(s.status, s.total) for s in page] == [
        (OrderStatus.CONFIRMED, Decimal("20.00")),
        (OrderStatus.PENDING, Decimal("6.50")),
    ]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2  # the page and its count; lines never load
    assert all("orders.note" not in s and "order_lines.sku" not in s for s in selects)


async def test_get_loads_the_lines_in_position_order(engine: AsyncEngine, new_uow: NewUow) -> None:
    placed = order(uuid.uuid4(), OrderStatus.PENDING, "3.00", "1.00", "2.00")
    await store(new_uow, placed)
    async with new_uow() as uow:
        loaded = await uow.orders.get(placed.id)
    assert loaded is not None
    assert [line.unit_price for line in loaded.lines] == [
        Decimal(p) for p in ("3.00", "1.00", "2.00")
    ]
    assert loaded.total == Decimal("12.00")


async def test_an_order_without_lines_totals_zero_in_the_list(
    engine: AsyncEngine, new_uow: NewUow
) -> None:
    customer = uuid.uuid4()
    await store(new_uow, order(customer, OrderStatus.PENDING))
    async with new_uow() as uow:
        page, _ = await uow.orders.list_page(OrderFilters(customer_id=customer))
    assert [s.total for s in page] == [Decimal(0)]
