"""The order service against PostgreSQL: what a transaction leaves behind."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from orders.errors import OrderWithoutLinesError
from orders.models import Order, OrderLine
from orders.schemas.orders import OrderCreate, OrderLineCreate, OrderUpdate
from orders.services.orders import OrderService
from tests.support import NewUow


async def rows(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        orders = await connection.scalar(select(func.count()).select_from(Order))
        lines = await connection.scalar(select(func.count()).select_from(OrderLine))
    return orders or 0, lines or 0


def payload(lines: int) -> OrderCreate:
    line = OrderLineCreate(sku="SKU-9", quantity=1, unit_price=Decimal("1.00"))
    return OrderCreate(customer_id=uuid.uuid4(), currency="USD", lines=[line] * lines)


async def test_placed_order_and_its_lines_are_stored(engine: AsyncEngine, new_uow: NewUow) -> None:
    order = await OrderService(new_uow()).place_order(payload(lines=3))
    assert await rows(engine) == (1, 3)
    assert order.version_id == 1
    assert order.created_at.tzinfo is not None


async def test_a_broken_rule_stores_nothing(engine: AsyncEngine, new_uow: NewUow) -> None:
    with pytest.raises(OrderWithoutLinesError):
        await OrderService(new_uow()).place_order(payload(lines=0))
    assert await rows(engine) == (0, 0)


async def test_replacing_lines_bumps_the_version(engine: AsyncEngine, new_uow: NewUow) -> None:
    orders = OrderService(new_uow())
    order = await orders.place_order(payload(lines=2))
    new_lines = [OrderLineCreate(sku="SKU-7", quantity=5, unit_price=Decimal("2.00"))]
    updated = await orders.update_order(order.id, OrderUpdate(lines=new_lines), if_match='"1"')
    assert (updated.version_id, updated.total) == (2, Decimal("10.00"))
    assert await rows(engine) == (1, 1)
