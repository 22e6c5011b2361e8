"""Loading and storing orders.

Statements are built once, with bind parameters: building one per call, and computing its cache
key, costs more than the ORM's work on the rows (docs/performance.md).
"""

import functools
import uuid
from typing import Any

from sqlalchemy import Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from orders.models import Order
from orders.schemas.orders import OrderFilters, OrderSummary

# One statement for the order and its lines: `Session.get` would build a new one per call and,
# with the collection's selectin loader, send a second SELECT.
_ORDER_WITH_LINES = (
    select(Order).options(joinedload(Order.lines)).where(Order.id == bindparam("order_id"))
)

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


@functools.cache
def _page_statements(
    *, by_status: bool, by_customer: bool, oldest_first: bool, by_cursor: bool
) -> tuple[Select[*tuple[Any, ...]], Select[int]]:
    """The page and its count for one combination of filters, built on first use."""
    conditions = []
    if by_status:
        conditions.append(Order.status == bindparam("status"))
    if by_customer:
        conditions.append(Order.customer_id == bindparam("customer_id"))
    count = select(func.count()).select_from(Order).where(*conditions)
    if by_cursor:
        # Keyset: the rows after the last one listed, found through the index, at any depth.
        key = tuple_(Order.created_at, Order.id)
        after = tuple_(
            bindparam("after_created_at", type_=Order.created_at.type),
            bindparam("after_id", type_=Order.id.type),
        )
        conditions.append(key > after if oldest_first else key < after)
    if oldest_first:
        order_by = (Order.created_at.asc(), Order.id.asc())
    else:
        order_by = (Order.created_at.desc(), Order.id.desc())
    page = (
        select(*_SUMMARY_COLUMNS)
        .where(*conditions)
        .order_by(*order_by)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return page, count


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, order_id: uuid.UUID) -> Order | None:
        result = await self._session.execute(_ORDER_WITH_LINES, {"order_id": order_id})
        return result.unique().scalar_one_or_none()

    def add(self, order: Order) -> None:
        self._session.add(order)

    async def list_page(self, filters: OrderFilters) -> tuple[list[OrderSummary], int | None]:
        """A page of summaries and the total; no total when paging by cursor (a count of every
        match would cost what the cursor saves)."""
        page, count = _page_statements(
            by_status=filters.status is not None,
            by_customer=filters.customer_id is not None,
            oldest_first=filters.sort == "created_at",
            by_cursor=filters.after is not None,
        )
        parameters = {"status": filters.status, "customer_id": filters.customer_id}
        after_created_at, after_id = filters.after or (None, None)
        rows = await self._session.execute(
            page,
            {
                **parameters,
                "after_created_at": after_created_at,
                "after_id": after_id,
                "limit": filters.per_page,
                "offset": filters.offset,
            },
        )
        summaries = [OrderSummary.model_validate(row) for row in rows]
        if filters.after is not None:
            return summaries, None
        return summaries, await self._session.scalar(count, parameters) or 0
