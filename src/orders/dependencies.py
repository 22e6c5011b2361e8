"""Dependency providers for the routes, and their `Annotated` aliases.

Each provider takes the request and builds what it returns from the process's resources:
FastAPI solves a dependency's sub-tree again wherever it is named, so a flat graph is a
cheaper one (docs/performance.md). `async def` keeps them off the thread pool.
"""

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request

from core.idempotency import Idempotency, idempotency_key
from core.resources import resources_of
from orders.clients.customers import CustomersClient
from orders.services.orders import OrderService
from orders.unit_of_work import OrdersUnitOfWork

if TYPE_CHECKING:
    from orders.settings import OrdersSettings


async def get_order_service(request: Request) -> OrderService:
    """The service on a new unit of work, with the customers check when one is configured."""
    resources = resources_of(request)
    settings = cast("OrdersSettings", resources.settings)
    customers = None
    if settings.customers.base_url is not None:
        customers = CustomersClient(resources.http, resources.redis, settings.customers)
    return OrderService(OrdersUnitOfWork(resources.session_factory, resources.outbox), customers)


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]


async def get_idempotency(
    idempotency: Annotated[Idempotency, Depends(idempotency_key)], service: OrderServiceDep
) -> Idempotency:
    # FastAPI builds the service once per request: its unit of work is the one that commits.
    service.uow.answer_for(idempotency)
    return idempotency


# Routes that accept an Idempotency-Key; they tell how they answer (present_with).
IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
