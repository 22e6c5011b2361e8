"""Order business rules, with the persistence boundary faked in memory."""

import uuid
from decimal import Decimal

import pytest

from core.errors import PreconditionFailedError
from orders.errors import OrderNotFoundError, OrderStatusConflictError, OrderWithoutLinesError
from orders.models import OrderStatus
from orders.schemas.orders import OrderCreate, OrderLineCreate, OrderUpdate
from orders.services.orders import OrderService
from tests.orders.services.fakes import InMemoryUnitOfWork

LINE = OrderLineCreate(sku="SKU-1", quantity=2, unit_price=Decimal("3.10"))


def order_create(lines: list[OrderLineCreate] | None = None) -> OrderCreate:
    return OrderCreate(
        customer_id=uuid.uuid4(), currency="EUR", lines=[LINE] if lines is None else lines
    )


@pytest.fixture
def uow() -> InMemoryUnitOfWork:
    return InMemoryUnitOfWork()


@pytest.fixture
def service(uow: InMemoryUnitOfWork) -> OrderService:
    return OrderService(uow)


async def test_place_order_commits_a_pending_order_with_its_total(
    service: OrderService, uow: InMemoryUnitOfWork
) -> None:
    order = await service.place_order(order_create())
    assert uow.commits == 1
    assert uow.orders.rows == {order.id: order}
    assert (order.status, order.total) == (OrderStatus.PENDING, Decimal("6.20"))


async def test_an_order_without_lines_commits_nothing(
    service: OrderService, uow: InMemoryUnitOfWork
) -> None:
    with pytest.raises(OrderWithoutLinesError):
        await service.place_order(order_create(lines=[]))
    assert (uow.commits, uow.orders.rows) == (0, {})


async def test_lines_can_change_only_while_pending(service: OrderService) -> None:
    order = await service.place_order(order_create())
    await service.confirm_order(order.id, if_match=None)
    with pytest.raises(OrderStatusConflictError):
        await service.update_order(order.id, OrderUpdate(lines=[LINE, LINE]), if_match=None)
    assert len(order.lines) == 1


async def test_confirming_is_allowed_only_from_pending(service: OrderService) -> None:
    order = await service.place_order(order_create())
    await service.cancel_order(order.id, if_match=None)
    with pytest.raises(OrderStatusConflictError, match="is cancelled; cannot confirm"):
        await service.confirm_order(order.id, if_match=None)
    assert order.status is OrderStatus.CANCELLED


async def test_cancelling_a_cancelled_order_is_a_conflict(service: OrderService) -> None:
    order = await service.place_order(order_create())
    await service.cancel_order(order.id, if_match='"1"')
    with pytest.raises(OrderStatusConflictError):
        await service.cancel_order(order.id, if_match=None)


async def test_a_stale_if_match_changes_nothing(
    service: OrderService, uow: InMemoryUnitOfWork
) -> None:
    order = await service.place_order(order_create())
    with pytest.raises(PreconditionFailedError):
        await service.update_order(order.id, OrderUpdate(note="late"), if_match='"7"')
    assert (order.note, uow.commits) == (None, 1)


@pytest.mark.parametrize("if_match", ['"1"', "*", '"9", "1"'])
async def test_if_match_accepts_the_current_etag_in_any_listed_form(
    service: OrderService, if_match: str
) -> None:
    order = await service.place_order(order_create())
    updated = await service.update_order(order.id, OrderUpdate(note="ok"), if_match=if_match)
    assert updated.note == "ok"


async def test_a_weak_etag_never_satisfies_if_match(service: OrderService) -> None:
    order = await service.place_order(order_create())
    with pytest.raises(PreconditionFailedError):
        await service.update_order(order.id, OrderUpdate(note="x"), if_match='W/"1"')


async def test_unknown_order_is_not_found(service: OrderService) -> None:
    with pytest.raises(OrderNotFoundError):
        await service.get_order(uuid.uuid4())
