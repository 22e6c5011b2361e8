"""Bearer tokens: the identity provider issues them, we verify them.

- Tokens are JWTs checked for signature, `iss`, `aud`, `exp`, `nbf` and `sub`. The accepted
  algorithms are fixed by configuration, never by the token: with a JWKS only asymmetric ones
  (RS/PS/ES), without one only HS256 (development and test). `alg: none` never passes, and a
  key is used only with the algorithm family of its type, so no HS/RS confusion.
- Anything odd in a token is a 401 before any key is looked up: a token or JOSE header larger
  than any provider issues, `alg`/`kid`/`typ` that are not strings, `crit` (no extension is
  understood here), and `jku`/`x5u`/`jwk`/`x5c` (keys come from configuration, never a token).
- Keys come from the identity provider's JWKS (`core.jwks`), or in development and test from
  one shared HS256 secret.
- No valid token: 401 with `WWW-Authenticate: Bearer` (RFC 6750), as a problem response.
"""

import datetime as dt
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import jwt

from core.errors import DomainError, PermissionDeniedError
from core.settings import AuthSettings

# The HS256 key when development or test configures no JWKS and no shared key of its own, so
# `orders token` and the server agree. Settings refuse HS256 outside development and test.
DEVELOPMENT_SECRET = "development-only-hs256-secret-do-not-deploy"  # pragma: allowlist secret  # noqa: S105
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
VERIFIED_TOKENS_KEPT = 10_000
# Far above what providers issue (a few KiB with group claims); refused before any parsing.
MAX_TOKEN_CHARS = 16_384
MAX_HEADER_CHARS = 1_024
_REFUSED_HEADERS = frozenset({"crit", "jku", "x5u", "jwk", "x5c"})
_STRING_HEADERS = ("alg", "kid", "typ")
# RFC 6750 allows only these characters in error_description; details may quote a token.
_UNSAFE_IN_CHALLENGE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and the scopes it was granted."""

    subject: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]


class NotAuthenticatedError(DomainError):
    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        challenge = 'Bearer realm="api"'
        if error is not None:  # RFC 6750: no error code when no token was sent at all
            description = _UNSAFE_IN_CHALLENGE.sub("?", detail)
            challenge += f', error="{error}", error_description="{description}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class InsufficientScopeError(PermissionDeniedError):
    slug = "insufficient-scope"
    title = "The token lacks a required scope"

    def __init__(self, missing: Sequence[str]) -> None:
        scope = " ".join(missing)
        challenge = f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'
        super().__init__(
            f"the token lacks the scope(s): {scope}", headers={"WWW-Authenticate": challenge}
        )


class _KeySource(Protocol):
    @property
    def algorithms(self) -> frozenset[str]: ...

    async def key_for(self, kid: str | None, algorithm: str) -> Any: ...


class SharedSecret:
    """HS256 with one secret: development and test only (settings enforce it)."""

    algorithms: frozenset[str] = frozenset({"HS256"})

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def key_for(self, _kid: str | None, _algorithm: str) -> str:
        return self._secret


class TokenVerifier:
    """Verifies tokens; a token verified once is remembered until it expires (or the key
    cache's lifetime passes), since a client sends the same token with request after request:
    parsing and an RSA check per request would cost more than the rest of a read."""

    def __init__(self, settings: AuthSettings, keys: _KeySource) -> None:
        self._settings = settings
        self._keys = keys
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and still valid: no work, no I/O."""
        remembered = self._verified.get(token)
        if remembered is None:
            return None
        principal, until = remembered
        if time.time() < until:
            return principal
        del self._verified[token]
        return None

    async def verify(self, token: str) -> Principal:
        principal = self.remembered(token)
        if principal is not None:
            return principal
        principal = await self._verify(token)
        self._remember(token, principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        # Until it expires, by its own `exp` and our clock; never past a key-cache lifetime,
        # so a key the provider withdrew stops working as soon as it would without the cache.
        expires = float(principal.claims["exp"]) + self._settings.leeway_seconds
        self._verified[token] = (
            principal,
            min(expires, time.time() + self._settings.jwks_cache_seconds),
        )
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)  # the oldest

    async def _verify(self, token: str) -> Principal:
        header = _header(token)
        algorithm = header.get("alg")
        if algorithm not in self._keys.algorithms:
            raise NotAuthenticatedError(f"tokens signed with {quoted(algorithm)} are not accepted")
        key = await self._keys.key_for(header.get("kid"), algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as error:
            raise NotAuthenticatedError("the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise NotAuthenticatedError("the token is not valid yet") from error
        except jwt.InvalidAudienceError as error:
            raise NotAuthenticatedError("the token is meant for another audience") from error
        except jwt.InvalidIssuerError as error:
            raise NotAuthenticatedError("the token comes from an unexpected issuer") from error
        except jwt.InvalidSignatureError as error:
            raise NotAuthenticatedError("the token's signature does not verify") from error
        except jwt.PyJWTError as error:  # InvalidKeyError too: the key does not fit the token
            raise NotAuthenticatedError(f"the token is invalid: {error}") from error
        return Principal(str(claims["sub"]), _scopes(claims), claims)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, once it is known to hold nothing this verifier does not understand."""
    if len(token) > MAX_TOKEN_CHARS or len(token.partition(".")[0]) > MAX_HEADER_CHARS:
        raise NotAuthenticatedError("the token is larger than any this API accepts")
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise NotAuthenticatedError("the token is not a well-formed JWT") from error
    refused = sorted(_REFUSED_HEADERS & header.keys())
    if refused:
        raise NotAuthenticatedError(f"tokens with {', '.join(refused)} are not accepted")
    for name in _STRING_HEADERS:
        if name in header and not isinstance(header[name], str):
            raise NotAuthenticatedError(f"the token's {name} is not a string")
    return header


def quoted(value: object) -> str:
    """A value from the token, quoted and cut short, for an error detail."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."  # noqa: PLR2004 - display width


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    # `scope` is a space-separated string (RFC 8693); some providers send a `scp` list.
    # Anything else grants nothing.
    scope = claims.get("scope", claims.get("scp", ""))
    items = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else []
    return frozenset(item for item in items if isinstance(item, str))


def development_secret(settings: AuthSettings) -> str:
    return settings.hs256_secret.get_secret_value() or DEVELOPMENT_SECRET


def mint_token(
    settings: AuthSettings,
    subject: str,
    scopes: Sequence[str],
    *,
    ttl: dt.timedelta = dt.timedelta(hours=1),
) -> str:
    """An HS256 token the development server accepts (`orders token`); never for production."""
    now = dt.datetime.now(dt.UTC)
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, development_secret(settings), algorithm="HS256")
