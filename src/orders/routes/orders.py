"""Order endpoints: translate HTTP to service calls and back, nothing more."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from core.errors import ConcurrentUpdateError, PreconditionFailedError, problem_responses
from core.http import etag_for, none_match
from core.http_client import DownstreamUnavailableError
from core.pagination import Page
from orders.dependencies import OrderServiceDep
from orders.errors import (
    CustomerBlockedError,
    OrderNotFoundError,
    OrderStatusConflictError,
    OrderWithoutLinesError,
    UnknownCustomerError,
)
from orders.models import Order
from orders.schemas.orders import OrderCreate, OrderFilters, OrderRead, OrderSummary, OrderUpdate

router = APIRouter(prefix="/orders", tags=["orders"])

IfMatch = Annotated[
    str | None,
    Header(description="The ETag last seen; the change is refused with 412 if it is stale."),
]


def _order_response(response: Response, order: Order) -> OrderRead:
    response.headers["ETag"] = etag_for(order.version_id)
    return OrderRead.model_validate(order)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(
        OrderWithoutLinesError,
        UnknownCustomerError,
        CustomerBlockedError,
        DownstreamUnavailableError,
    ),
)
async def place_order(
    payload: OrderCreate, service: OrderServiceDep, request: Request, response: Response
) -> OrderRead:
    """Place a pending order with its lines."""
    order = await service.place_order(payload)
    response.headers["Location"] = request.app.url_path_for("get_order", order_id=str(order.id))
    return _order_response(response, order)


@router.get(
    "/{order_id}",
    response_model=OrderRead,
    responses={
        304: {"description": "Not modified: the ETag in If-None-Match is current."},
        **problem_responses(OrderNotFoundError),
    },
)
async def get_order(
    order_id: uuid.UUID,
    service: OrderServiceDep,
    response: Response,
    if_none_match: Annotated[
        str | None, Header(description="An ETag held: 304 without a body while it is current.")
    ] = None,
) -> Any:
    """Fetch one order with its lines."""
    order = await service.get_order(order_id)
    if not none_match(if_none_match, order.version_id):
        return Response(
            status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag_for(order.version_id)}
        )
    return _order_response(response, order)


@router.get("", responses=problem_responses())
async def list_orders(
    filters: Annotated[OrderFilters, Query()], service: OrderServiceDep
) -> Page[OrderSummary]:
    """List orders, newest first by default, filtered by status and customer."""
    return await service.list_orders(filters)


@router.patch(
    "/{order_id}",
    responses=problem_responses(
        OrderNotFoundError,
        OrderStatusConflictError,
        ConcurrentUpdateError,
        PreconditionFailedError,
        OrderWithoutLinesError,
    ),
)
async def update_order(
    order_id: uuid.UUID,
    changes: OrderUpdate,
    service: OrderServiceDep,
    response: Response,
    if_match: IfMatch = None,
) -> OrderRead:
    """Change a pending order's note or replace its lines."""
    return _order_response(response, await service.update_order(order_id, changes, if_match))


_TRANSITION_PROBLEMS = problem_responses(
    OrderNotFoundError, OrderStatusConflictError, ConcurrentUpdateError, PreconditionFailedError
)


@router.post("/{order_id}/confirm", responses=_TRANSITION_PROBLEMS)
async def confirm_order(
    order_id: uuid.UUID, service: OrderServiceDep, response: Response, if_match: IfMatch = None
) -> OrderRead:
    """Confirm a pending order."""
    return _order_response(response, await service.confirm_order(order_id, if_match))


@router.post("/{order_id}/cancel", responses=_TRANSITION_PROBLEMS)
async def cancel_order(
    order_id: uuid.UUID, service: OrderServiceDep, response: Response, if_match: IfMatch = None
) -> OrderRead:
    """Cancel a pending order."""
    return _order_response(response, await service.cancel_order(order_id, if_match))
