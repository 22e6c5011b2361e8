"""Loading and storing orders."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from orders.models import Order
from orders.schemas.orders import OrderFilters, OrderSummary

# The list selects only the columns it returns; the total is summed in SQL, lines never load.
_SUMMARY_COLUMNS = (
    Order.id,
    Order.customer_id,
    Order.status,
    Order.currency,
    Order.total,
    Order.version_id,
    Order.created_at,
    Order.updated_at,
)


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, order_id: uuid.UUID) -> Order | None:
        return await self._session.get(Order, order_id)

    def add(self, order: Order) -> None:
        self._session.add(order)

    async def list_page(self, filters: OrderFilters) -> tuple[list[OrderSummary], int]:
        conditions = []
        if filters.status is not None:
            conditions.append(Order.status == filters.status)
        if filters.customer_id is not None:
            conditions.append(Order.customer_id == filters.customer_id)
        if filters.sort == "created_at":
            order_by = (Order.created_at.asc(), Order.id.asc())
        else:
            order_by = (Order.created_at.desc(), Order.id.desc())
        rows = await self._session.execute(
            select(*_SUMMARY_COLUMNS)
            .where(*conditions)
            .order_by(*order_by)
            .limit(filters.per_page)
            .offset(filters.offset)
        )
        total = await self._session.scalar(
            select(func.count()).select_from(Order).where(*conditions)
        )
        return [OrderSummary.model_validate(row) for row in rows.mappings()], total or 0
