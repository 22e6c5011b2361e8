"""Dependency providers for the routes, and their `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends

from core.resources import Resources, get_resources
from orders.services.orders import OrderService
from orders.unit_of_work import OrdersUnitOfWork


def get_unit_of_work(resources: Annotated[Resources, Depends(get_resources)]) -> OrdersUnitOfWork:
    return OrdersUnitOfWork(resources.session_factory, resources.outbox)


def get_order_service(
    uow: Annotated[OrdersUnitOfWork, Depends(get_unit_of_work)],
) -> OrderService:
    return OrderService(uow)


OrderServiceDep = Annotated[OrderService, Depends(get_order_service)]
