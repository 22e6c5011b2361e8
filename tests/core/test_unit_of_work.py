"""The unit of work on real PostgreSQL: explicit commit, rollback by default, stale writes."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import ConcurrentUpdateError
from orders.models import Order, OrderLine
from orders.unit_of_work import OrdersUnitOfWork
from tests.support import NewUow


def new_order() -> Order:
    line = OrderLine(position=0, sku="SKU-1", quantity=1, unit_price=Decimal("2.50"))
    return Order(id=uuid.uuid4(), customer_id=uuid.uuid4(), currency="EUR", lines=[line])


async def count_orders(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(Order)) or 0


async def test_commit_makes_the_change_visible(engine: AsyncEngine, new_uow: NewUow) -> None:
    async with new_uow() as uow:
        uow.orders.add(new_order())
        await uow.commit()
    assert await count_orders(engine) == 1


async def test_leaving_without_commit_rolls_back(engine: AsyncEngine, new_uow: NewUow) -> None:
    async with new_uow() as uow:
        uow.orders.add(new_order())
        await uow.session.flush()
    assert await count_orders(engine) == 0


async def test_an_exception_before_commit_leaves_nothing(
    engine: AsyncEngine, new_uow: NewUow
) -> None:
    async def fail_after_flush() -> None:
        async with new_uow() as uow:
            uow.orders.add(new_order())
            await uow.session.flush()
            raise LookupError

    with pytest.raises(LookupError):
        await fail_after_flush()
    assert await count_orders(engine) == 0


async def test_stale_write_is_a_concurrent_update_error(new_uow: NewUow) -> None:
    order = new_order()
    async with new_uow() as uow:
        uow.orders.add(order)
        await uow.commit()

    first, second = new_uow(), new_uow()
    async with first, second:
        mine = await first.orders.get(order.id)
        theirs = await second.orders.get(order.id)
        assert mine is not None
        assert theirs is not None
        mine.note = "mine"
        theirs.note = "theirs"
        await first.commit()
        with pytest.raises(ConcurrentUpdateError):
            await second.commit()

    async with new_uow() as uow:
        stored = await uow.orders.get(order.id)
        assert stored is not None
        assert (stored.note, stored.version_id) == ("mine", 2)


def test_session_outside_the_block_is_an_error(new_uow: NewUow) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        _ = new_uow().session


async def local_setting_survives(uow: OrdersUnitOfWork) -> bool:
    """SET LOCAL lasts until the transaction ends: the next statement sees it only inside one."""
    await uow.session.execute(text("SET LOCAL statement_timeout = '1234ms'"))
    return bool(await uow.session.scalar(text("SHOW statement_timeout")) == "1234ms")


async def test_reads_run_without_a_transaction(new_uow: NewUow) -> None:
    reader = new_uow()
    async with reader.reading():
        assert not await local_setting_survives(reader)
    writer = new_uow()
    async with writer:
        assert await local_setting_survives(writer)
