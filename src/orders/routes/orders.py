"""Order endpoints: translate HTTP to service calls and back, nothing more."""

import uuid
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, Security, status

from core.errors import (
    ConcurrentUpdateError,
    PreconditionFailedError,
    PreconditionRequiredError,
    problem_responses,
)
from core.http import IfMatchDep, etag_for, none_match
from core.http_client import DownstreamUnavailableError
from core.idempotency import (
    IdempotencyKeyInUseError,
    IdempotencyKeyReusedError,
    StoredResponse,
    stored_json,
)
from core.pagination import Page
from core.rate_limit import RateLimitedError
from core.security import authorize, rate_limit
from core.tokens import InsufficientScopeError, NotAuthenticatedError
from orders.dependencies import IdempotencyDep, OrderServiceDep
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

# Who may call each route and how often: a scope per kind of access, a rate limit per group.
READ_SCOPE, WRITE_SCOPE = "orders:read", "orders:write"
READ = [Security(authorize, scopes=[READ_SCOPE]), rate_limit("reads")]
WRITE = [Security(authorize, scopes=[WRITE_SCOPE]), rate_limit("writes")]
_GUARDED = (NotAuthenticatedError, InsufficientScopeError, RateLimitedError)
_IDEMPOTENT = (IdempotencyKeyInUseError, IdempotencyKeyReusedError)


def _order_response(response: Response, order: Order) -> OrderRead:
    response.headers["ETag"] = etag_for(order.version_id)
    return OrderRead.model_validate(order)


def _order_answer(order: Order, status: HTTPStatus, **headers: str) -> StoredResponse:
    """An order as a POST answers it: what an Idempotency-Key stores and replays."""
    body = OrderRead.model_validate(order).model_dump_json().encode()
    return stored_json(status, body, {"ETag": etag_for(order.version_id), **headers})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderRead,
    dependencies=WRITE,
    responses=problem_responses(
        OrderWithoutLinesError,
        UnknownCustomerError,
        CustomerBlockedError,
        DownstreamUnavailableError,
        *_GUARDED,
        *_IDEMPOTENT,
    ),
)
async def place_order(
    payload: OrderCreate,
    service: OrderServiceDep,
    idempotency: IdempotencyDep,
    request: Request,
    response: Response,
) -> Response:
    """Place a pending order with its lines. With an `Idempotency-Key`, a retry gets the first
    answer back (marked `Idempotent-Replayed: true`) and places nothing."""
    idempotency.present_with(
        lambda order: _order_answer(
            order,
            HTTPStatus.CREATED,
            Location=request.app.url_path_for("get_order", order_id=str(order.id)),
        )
    )
    order = await service.place_order(payload)
    return idempotency.answer(order).to_response(extra=response.headers)


@router.get(
    "/{order_id}",
    response_model=OrderRead,
    dependencies=READ,
    responses={
        304: {"description": "Not modified: the ETag in If-None-Match is current."},
        **problem_responses(OrderNotFoundError, *_GUARDED),
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
        headers = {**response.headers, "ETag": etag_for(order.version_id)}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return _order_response(response, order)


@router.get("", dependencies=READ, responses=problem_responses(*_GUARDED))
async def list_orders(
    filters: Annotated[OrderFilters, Query()], service: OrderServiceDep
) -> Page[OrderSummary]:
    """List orders, newest first by default, filtered by status and customer."""
    return await service.list_orders(filters)


@router.patch(
    "/{order_id}",
    dependencies=WRITE,
    responses=problem_responses(
        OrderNotFoundError,
        OrderStatusConflictError,
        ConcurrentUpdateError,
        PreconditionFailedError,
        PreconditionRequiredError,
        OrderWithoutLinesError,
        *_GUARDED,
    ),
)
async def update_order(
    order_id: uuid.UUID,
    changes: OrderUpdate,
    service: OrderServiceDep,
    response: Response,
    if_match: IfMatchDep,
) -> OrderRead:
    """Change a pending order's note or replace its lines."""
    return _order_response(response, await service.update_order(order_id, changes, if_match))


_TRANSITION_PROBLEMS = problem_responses(
    OrderNotFoundError,
    OrderStatusConflictError,
    ConcurrentUpdateError,
    PreconditionFailedError,
    PreconditionRequiredError,
    *_GUARDED,
    *_IDEMPOTENT,
)


@router.post(
    "/{order_id}/confirm",
    response_model=OrderRead,
    dependencies=WRITE,
    responses=_TRANSITION_PROBLEMS,
)
async def confirm_order(
    order_id: uuid.UUID,
    service: OrderServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    if_match: IfMatchDep,
) -> Response:
    """Confirm a pending order (idempotent with an `Idempotency-Key`)."""
    idempotency.present_with(lambda order: _order_answer(order, HTTPStatus.OK))
    order = await service.confirm_order(order_id, if_match)
    return idempotency.answer(order).to_response(extra=response.headers)


@router.post(
    "/{order_id}/cancel",
    response_model=OrderRead,
    dependencies=WRITE,
    responses=_TRANSITION_PROBLEMS,
)
async def cancel_order(
    order_id: uuid.UUID,
    service: OrderServiceDep,
    idempotency: IdempotencyDep,
    response: Response,
    if_match: IfMatchDep,
) -> Response:
    """Cancel a pending order (idempotent with an `Idempotency-Key`)."""
    idempotency.present_with(lambda order: _order_answer(order, HTTPStatus.OK))
    order = await service.cancel_order(order_id, if_match)
    return idempotency.answer(order).to_response(extra=response.headers)
