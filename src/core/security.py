"""Who may call a route, and how often: the bearer token's principal, scopes, rate limits.

Routes declare `dependencies=[Security(authorize, scopes=["invoices:read"]), rate_limit("reads")]`;
the scheme and the scopes show in the OpenAPI document. No token or a bad one: 401; a missing
scope: 403; over the limit: 429 (all problem+json).

The functions take `request` rather than other dependencies: FastAPI solves a dependency's
whole sub-tree again wherever it is named, cached or not, and a request names these several
times. The principal is verified once per request and kept in `request.state`.
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from starlette.routing import BaseRoute

from core.context import subject_var
from core.resources import resources_of
from core.tokens import InsufficientScopeError, NotAuthenticatedError, Principal

bearer = HTTPBearer(
    bearerFormat="JWT",
    description="A JWT from the identity provider; `orders token` mints one in development.",
    auto_error=False,
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def identify(request: Request, credentials: Credentials) -> Principal | None:
    """The caller of a valid token, None without one; a bad token is 401. Logs get its subject."""
    if hasattr(request.state, "principal"):
        principal: Principal | None = request.state.principal
        return principal
    principal = None
    if credentials is not None:
        principal = await resources_of(request).tokens.verify(credentials.credentials)
        subject_var.set(principal.subject)
    request.state.principal = principal
    return principal


async def authenticate(request: Request, credentials: Credentials) -> Principal:
    principal = await identify(request, credentials)
    if principal is None:
        raise NotAuthenticatedError("a bearer token is required", error=None)
    return principal


async def authorize(
    security_scopes: SecurityScopes, request: Request, credentials: Credentials
) -> Principal:
    """Use as `Security(authorize, scopes=[...])`: 403 unless the token has every scope."""
    principal = await authenticate(request, credentials)
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise InsufficientScopeError(missing)
    return principal


def current_principal(request: Request) -> Principal | None:
    """The principal `authorize` (or `identify`) found for this request, if any."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def rate_limit(group: str) -> Any:
    """A route dependency counting the request against `group`'s limit for its caller; list it
    after `authorize`, whose principal it counts (anonymous routes: the client address)."""

    async def limit(request: Request, response: Response) -> None:
        principal = current_principal(request)
        if principal is not None:
            caller = "sub:" + principal.subject
        else:  # the proxy's address, unless it is trusted (http.trusted_proxies)
            caller = "ip:" + (request.client.host if request.client else "unknown")
        quota = await resources_of(request).rate_limiter.check(group, caller)
        if quota is not None:
            response.headers.update(quota.headers())

    return Depends(limit)


def declared_scopes(routes: Sequence[BaseRoute]) -> list[str]:
    """Every scope the routes ask for, as their OpenAPI security requirements name them."""
    paths = get_openapi(title="", version="", routes=routes).get("paths", {})
    return sorted(
        {
            scope
            for item in paths.values()
            for operation in item.values()
            for requirement in operation.get("security", [])
            for scopes in requirement.values()
            for scope in scopes
        }
    )
