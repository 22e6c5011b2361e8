"""Who may call a route, and how often: the bearer token's principal, scopes, rate limits.

Routes declare `dependencies=[Security(authorize, scopes=["orders:read"]), rate_limit("reads")]`;
the scheme and the scopes show in the OpenAPI document. No token or a bad one: 401; a missing
scope: 403; over the limit: 429 (all problem+json).
"""

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from core.context import subject_var
from core.resources import Resources, get_resources
from core.tokens import InsufficientScopeError, NotAuthenticatedError, Principal

bearer = HTTPBearer(
    bearerFormat="JWT",
    description="A JWT from the identity provider; `orders token` mints one in development.",
    auto_error=False,
)


async def identify(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    resources: Annotated[Resources, Depends(get_resources)],
) -> Principal | None:
    """The caller of a valid token, None without one; a bad token is 401. Logs get its subject."""
    if credentials is None:
        return None
    principal = await resources.tokens.verify(credentials.credentials)
    subject_var.set(principal.subject)
    return principal


async def authenticate(principal: Annotated[Principal | None, Depends(identify)]) -> Principal:
    if principal is None:
        raise NotAuthenticatedError("a bearer token is required", error=None)
    return principal


async def authorize(
    security_scopes: SecurityScopes, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    """Use as `Security(authorize, scopes=[...])`: 403 unless the token has every scope."""
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise InsufficientScopeError(missing)
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def rate_limit(group: str) -> Any:
    """A route dependency counting the request against `group`'s limit for its caller."""

    async def limit(
        request: Request,
        response: Response,
        principal: Annotated[Principal | None, Depends(identify)],
        resources: Annotated[Resources, Depends(get_resources)],
    ) -> None:
        if principal is not None:
            caller = "sub:" + principal.subject
        else:  # anonymous routes: per client address (the proxy's, unless it is trusted)
            caller = "ip:" + (request.client.host if request.client else "unknown")
        quota = await resources.rate_limiter.check(group, caller)
        if quota is not None:
            response.headers.update(quota.headers())

    return Depends(limit)
