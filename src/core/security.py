"""Who may call a route, and how often: the bearer token's principal, scopes, rate limits.

Routes declare `dependencies=[Security(authorize, scopes=["invoices:read"]), rate_limit("reads")]`;
the scheme and the scopes show in the OpenAPI document. No token or a bad one: 401; a missing
scope: 403; over the limit: 429 (all problem+json).

The functions take `request` rather than other dependencies: FastAPI solves a dependency's
whole sub-tree again wherever it is named, cached or not, and a request names these several
times. The principal is verified once per request and kept in `request.state`.

FastAPI reads and parses a route's body before it runs any dependency, so `BearerTokenMiddleware`
authenticates the requests of the protected paths first: without a valid token nothing reads
the body. Failed authentication counts against the client address's own limit (429 past it).
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from core.context import subject_var
from core.errors import DomainError, error_response
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
        principal = await _verified(request, credentials.credentials)
        subject_var.set(principal.subject)
    request.state.principal = principal
    return principal


async def _verified(request: Request, token: str) -> Principal:
    resources = resources_of(request)
    principal = resources.tokens.remembered(token)
    if principal is not None:  # verified before: a failing neighbour at its address is no reason
        return principal
    address = client_address(request)
    await resources.rate_limiter.refuse_failing(address)
    try:
        return await resources.tokens.verify(token)
    except NotAuthenticatedError:
        await resources.rate_limiter.count_failure(address)
        raise


async def authenticate(request: Request, credentials: Credentials) -> Principal:
    principal = await identify(request, credentials)
    if principal is None:
        await resources_of(request).rate_limiter.count_failure(client_address(request))
        raise NotAuthenticatedError("a bearer token is required", error=None)
    return principal


class BearerTokenMiddleware:
    """Requests under `prefixes` are authenticated before anything reads their body."""

    def __init__(self, app: ASGIApp, prefixes: Sequence[str]) -> None:
        self.app = app
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            request = Request(scope)  # its state is the scope's: the routes find the principal
            try:
                await authenticate(request, await bearer(request))
            except DomainError as error:  # 401, 429, or 503 without the provider's keys
                await error_response(scope, error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


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
        caller = "sub:" + principal.subject if principal is not None else client_address(request)
        quota = await resources_of(request).rate_limiter.check(group, caller)
        if quota is not None:
            response.headers.update(quota.headers())

    return Depends(limit)


def client_address(request: Request) -> str:
    """The caller's address as limits count it: the proxy's, unless it is trusted
    (http.trusted_proxies)."""
    return "ip:" + (request.client.host if request.client else "unknown")


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
