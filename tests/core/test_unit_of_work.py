"""The unit of work on real PostgreSQL: explicit commit, rollback by default, stale writes."""

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.database import build_session_factory
from core.errors import ConcurrentUpdateError
from orders.models import Order, OrderLine
from orders.unit_of_work import OrdersUnitOfWork


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return build_session_factory(engine)


def new_order() -> Order:
    line = OrderLine(position=0, sku="SKU-1", quantity=1, unit_price=Decimal("2.50"))
    return Order(customer_id=uuid.uuid4(), currency="EUR", lines=[line])


async def count_orders(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Order)) or 0


async def test_commit_makes_the_change_visible(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with OrdersUnitOfWork(sessions) as uow:
        uow.orders.add(new_order())
        await uow.commit()
    assert await count_orders(sessions) == 1


async def test_leaving_without_commit_rolls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with OrdersUnitOfWork(sessions) as uow:
        uow.orders.add(new_order())
        await uow.session.flush()
    assert await count_orders(sessions) == 0


async def test_an_exception_before_commit_leaves_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def fail_after_flush() -> None:
        async with OrdersUnitOfWork(sessions) as uow:
            uow.orders.add(new_order())
            await uow.session.flush()
            raise LookupError

    with pytest.raises(LookupError):
        await fail_after_flush()
    assert await count_orders(sessions) == 0


async def test_stale_write_is_a_concurrent_update_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    order = new_order()
    async with OrdersUnitOfWork(sessions) as uow:
        uow.orders.add(order)
        await uow.commit()

    first, second = OrdersUnitOfWork(sessions), OrdersUnitOfWork(sessions)
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

    async with OrdersUnitOfWork(sessions) as uow:
        stored = await uow.orders.get(order.id)
        assert stored is not None
        assert (stored.note, stored.version_id) == ("mine", 2)


def test_session_outside_the_block_is_an_error(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        _ = OrdersUnitOfWork(sessions).session
