"""Domain error tree and the handlers that render every error as RFC 9457 problem+json."""

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from core.context import request_id_var

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_ROOT = "/problems/"

log = structlog.get_logger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class DomainError(Exception):
    """Base of every error a service raises on purpose; each subclass names its problem type."""

    status: ClassVar[HTTPStatus] = HTTPStatus.BAD_REQUEST
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # more problem members, e.g. `errors`


class NotFoundError(DomainError):
    status = HTTPStatus.NOT_FOUND
    slug = "not-found"
    title = "Resource not found"


class ConflictError(DomainError):
    status = HTTPStatus.CONFLICT
    slug = "conflict"
    title = "Conflict with the current state"


class ConcurrentUpdateError(ConflictError):
    slug = "concurrent-update"
    title = "Concurrent update"

    def __init__(self, detail: str = "the resource was changed by another request; retry") -> None:
        super().__init__(detail)


class PreconditionFailedError(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED
    slug = "precondition-failed"
    title = "Precondition failed"


class PreconditionRequiredError(DomainError):
    status = HTTPStatus.PRECONDITION_REQUIRED
    slug = "precondition-required"
    title = "Precondition required"


class BusinessRuleError(DomainError):
    status = HTTPStatus.UNPROCESSABLE_CONTENT
    slug = "business-rule-violated"
    title = "Business rule violated"


class PermissionDeniedError(DomainError):
    status = HTTPStatus.FORBIDDEN
    slug = "permission-denied"
    title = "Permission denied"


class ServiceUnavailableError(DomainError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    slug = "service-unavailable"
    title = "Service unavailable"


class DatabaseUnavailableError(ServiceUnavailableError):
    slug = "database-unavailable"
    title = "Database unavailable"

    def __init__(self, detail: str = "the database cannot be reached; retry later") -> None:
        super().__init__(detail, headers={"Retry-After": "5"})


class DatabaseBusyError(ServiceUnavailableError):
    slug = "database-busy"
    title = "Database busy"

    def __init__(self, detail: str = "every database connection is in use; retry later") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class TransactionConflictError(ServiceUnavailableError):
    """A deadlock or serialization failure: the transaction was rolled back, so a retry is safe."""

    slug = "transaction-conflict"
    title = "Transaction conflict"

    def __init__(
        self, detail: str = "the request met a concurrent one and was not applied; retry it"
    ) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class DatabaseTimeoutError(DomainError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    slug = "database-timeout"
    title = "Database timeout"

    def __init__(self, detail: str = "the database did not answer in time; retry later") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class FieldError(BaseModel):
    location: list[str | int] = Field(examples=[["body", "lines", 0, "quantity"]])
    message: str = Field(examples=["Input should be greater than 0"])
    code: str = Field(examples=["greater_than"])


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str = Field(examples=["/problems/order-not-found"])
    title: str = Field(examples=["Order not found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["order 0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f does not exist"])
    instance: str = Field(examples=["/v1/invoices/0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f"])
    request_id: str | None = Field(default=None, examples=["3f1c2b7e9a4d4c0e8b6a5f2d1e0c9b8a"])
    errors: list[FieldError] | None = Field(default=None, description="Invalid fields, on 422.")


def problem_response(  # noqa: PLR0913 - one renderer for every problem field
    scope: Scope,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase
    body = {
        "type": PROBLEM_TYPE_ROOT + (slug or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
        "request_id": request_id_var.get(),
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each problem it can return, plus the invalid-input and the
    database ones (every route reaches the database)."""
    responses: dict[int | str, dict[str, Any]] = {}
    every: tuple[type[DomainError], ...] = (
        *errors,
        _MalformedRequestError,
        _InvalidRequestError,
        DatabaseBusyError,
        DatabaseUnavailableError,
        DatabaseTimeoutError,
        TransactionConflictError,
    )
    for error in every:
        entry = responses.setdefault(
            int(error.status), {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
        )
        titles = [*entry.get("description", "").split(" / "), error.title]
        entry["description"] = " / ".join(t for t in titles if t)
    return responses


class _MalformedRequestError(DomainError):
    slug = "malformed-request"
    title = "Malformed request body"


class _InvalidRequestError(DomainError):
    status = HTTPStatus.UNPROCESSABLE_CONTENT
    slug = "invalid-request"
    title = "Invalid request"


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)  # noqa: S101 - registered for DomainError only
    return error_response(request.scope, error)


def error_response(scope: Scope, error: DomainError) -> JSONResponse:
    """The problem answer for `error`, also for middleware, which the handlers do not cover."""
    return problem_response(
        scope,
        error.status,
        error.detail,
        slug=error.slug,
        title=error.title,
        headers=error.headers,
        extra=error.extra,
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for it only
    details: Sequence[Mapping[str, Any]] = error.errors()
    if any(item["type"] == "json_invalid" for item in details):
        return problem_response(
            request.scope,
            _MalformedRequestError.status,
            "the request body is not valid JSON",
            slug=_MalformedRequestError.slug,
            title=_MalformedRequestError.title,
        )
    errors = [
        {"location": list(item["loc"]), "message": item["msg"], "code": item["type"]}
        for item in details
    ]
    return problem_response(
        request.scope,
        _InvalidRequestError.status,
        f"{len(errors)} invalid field(s)",
        slug=_InvalidRequestError.slug,
        title=_InvalidRequestError.title,
        extra={"errors": errors},
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)  # noqa: S101 - registered for it only
    phrase = HTTPStatus(error.status_code).phrase
    detail = error.detail if error.detail != phrase else f"{phrase.lower()}: {request.url.path}"
    headers = dict(error.headers or {})
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request.scope, error.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    # Starlette names only the first route that matches the path; Allow must name them all.
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.routes
        )
    ]


# SQLSTATEs that say "try again later", not "this request is wrong": the statement or lock
# timeout, and a server that is shutting down, starting up or out of connections.
_TIMEOUT_STATES = frozenset({"57014", "55P03"})
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# deadlock_detected and serialization_failure: PostgreSQL rolled the transaction back.
_CONFLICT_STATES = frozenset({"40P01", "40001"})


def database_trouble(error: sa_exc.SQLAlchemyError) -> DomainError | None:
    """The problem a database failure is to a client, or None for a fault of ours (a 500)."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return DatabaseBusyError()
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    if sqlstate in _TIMEOUT_STATES:
        return DatabaseTimeoutError()
    if sqlstate in _CONFLICT_STATES:
        return TransactionConflictError()
    lost = isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
    if (
        lost
        or isinstance(error, sa_exc.DisconnectionError | sa_exc.InterfaceError)
        or sqlstate in _UNAVAILABLE_STATES
        or sqlstate.startswith("08")  # connection exceptions
    ):
        return DatabaseUnavailableError()
    return None


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, sa_exc.SQLAlchemyError)  # noqa: S101 - registered for it only
    problem = database_trouble(error)
    if problem is None:
        raise error  # the last-resort 500, logged with its traceback
    # The class and SQLSTATE only: a driver's message may quote the row it refused.
    cause = getattr(error, "orig", None) or error
    log.warning(
        "database.failed",
        problem=problem.slug,
        error=type(cause).__name__,
        sqlstate=getattr(cause, "sqlstate", None),
    )
    return await _domain_error(request, problem)


def install_error_handlers(app: FastAPI) -> None:
    """Unexpected exceptions are rendered by `RequestContextMiddleware`, which sees them all."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.SQLAlchemyError, _database_error)
