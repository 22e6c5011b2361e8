"""Dependency providers for the routes, and their `Annotated` aliases."""

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends

from core.idempotency import Idempotency, idempotency_key
from core.resources import Resources, get_resources
from orders.clients.customers import CustomersClient
from orders.services.orders import OrderService
from orders.unit_of_work import OrdersUnitOfWork

if TYPE_CHECKING:
    from orders.settings import OrdersSettings


def get_unit_of_work(resources: Annotated[Resources, Depends(get_resources)]) -> OrdersUnitOfWork:
    return OrdersUnitOfWork(resources.session_factory, resources.outbox)


def get_customers(
    resources: Annotated[Resources, Depends(get_resources)],
) -> CustomersClient | None:
    settings = cast("OrdersSettings", resources.settings)
    if settings.customers.base_url is None:
        return None
    return CustomersClient(resources.http, resources.redis, settings.customers)


def get_order_service(
    uow: Annotated[OrdersUnitOfWork, Depends(get_unit_of_work)],
    customers: Annotated[CustomersClient | None, Depends(get_customers)],
) -> OrderService:
    return OrderService(uow, customers)


def get_idempotency(
    idempotency: Annotated[Idempotency, Depends(idempotency_key)],
    uow: Annotated[OrdersUnitOfWork, Depends(get_unit_of_work)],
) -> Idempotency:
    # FastAPI builds one unit of work per request: the service's is this one.
    uow.answer_for(idempotency)
    return idempotency


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]
# Routes that accept an Idempotency-Key; they tell how they answer (present_with).
IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
