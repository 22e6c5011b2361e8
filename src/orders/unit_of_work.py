"""The orders unit of work: one transaction, with the repositories it needs."""

from sqlalchemy.ext.asyncio import AsyncSession

from core.unit_of_work import UnitOfWork
from orders.repositories.orders import OrderRepository


class OrdersUnitOfWork(UnitOfWork):
    orders: OrderRepository

    def _bind(self, session: AsyncSession) -> None:
        self.orders = OrderRepository(session)
