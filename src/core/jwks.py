"""The identity provider's public keys (JWKS): fetched with the process's HTTP client, cached,
and refetched when a token names an unknown `kid` (at most every `jwks_refetch_seconds`, so
forged kids cannot flood the provider). A key serves its own family only (no HS/RS confusion),
and an EC key only the algorithm of its curve.

A failed fetch (unreachable, any status but 2xx, not a key set, no signing key in it) is
remembered: the next one waits `jwks_refetch_seconds`, whatever the requests. Meanwhile the last
good keys keep serving; without any, requests get 503 with the time left as `Retry-After`.
"""

import asyncio
import math
import time
from typing import Any

import httpx
import jwt
import structlog

from core.errors import ServiceUnavailableError
from core.http_client import ResilientClient
from core.settings import AuthSettings
from core.tokens import (
    NotAuthenticatedError,
    SharedSecret,
    TokenVerifier,
    development_secret,
    quoted,
)

log = structlog.get_logger(__name__)

_FAMILIES = {"RSA": ("RS", "PS"), "EC": ("ES",)}


def token_verifier(settings: AuthSettings, http: ResilientClient) -> TokenVerifier:
    """Verifying with the JWKS when one is configured, else with the HS256 secret."""
    if settings.jwks_url is not None:
        return TokenVerifier(settings, JwksKeys(settings, http))
    return TokenVerifier(settings, SharedSecret(development_secret(settings)))


class KeysUnavailableError(ServiceUnavailableError):
    slug = "token-keys-unavailable"
    title = "Tokens cannot be verified right now"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            "the identity provider's keys could not be fetched; retry later",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class JwksKeys:
    """The identity provider's public keys, fetched when needed and kept for a while."""

    def __init__(self, settings: AuthSettings, http: ResilientClient) -> None:
        if settings.jwks_url is None:
            msg = "JwksKeys needs auth.jwks_url"
            raise ValueError(msg)
        self._url = settings.jwks_url
        self._http = http
        self.algorithms: frozenset[str] = frozenset(settings.algorithms)
        self._cache_seconds = settings.jwks_cache_seconds
        self._refetch_seconds = settings.jwks_refetch_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # the last fetch that succeeded
        self._failed_at: float | None = None  # the last fetch, if it failed
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        await self._refresh(min_age=self._cache_seconds)
        if kid not in self._keys and kid is not None:
            await self._refresh(min_age=self._refetch_seconds)  # a rotation we have not seen
        if not self._keys:
            raise KeysUnavailableError(self._retry_after())
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # one key: a token may omit its kid
        if key is None:
            raise NotAuthenticatedError("the token's signing key (kid) is unknown")
        if not _serves(key, algorithm):
            raise NotAuthenticatedError(f"the key {quoted(kid)} is not for {algorithm}")
        return key.key

    def _due(self, min_age: float) -> bool:
        """Whether to fetch: keys older than `min_age`, and no failure within the interval."""
        now = time.monotonic()
        if self._failed_at is not None and now - self._failed_at < self._refetch_seconds:
            return False
        return self._fetched_at is None or now - self._fetched_at >= min_age

    def _retry_after(self) -> int:
        waited = time.monotonic() - (self._failed_at or 0.0)
        return max(math.ceil(self._refetch_seconds - waited), 1)

    async def _refresh(self, *, min_age: float) -> None:
        if not self._due(min_age):
            return
        async with self._lock:  # one fetch at a time; waiters use its result
            if not self._due(min_age):
                return
            try:
                keys = await self._fetch()
            except (ServiceUnavailableError, httpx.HTTPError, jwt.PyJWTError, ValueError) as error:
                self._failed_at = time.monotonic()
                log.warning("auth.jwks_fetch_failed", url=self._url, error=str(error))
                return
            self._keys, self._fetched_at, self._failed_at = keys, time.monotonic(), None
            log.info("auth.jwks_fetched", keys=len(keys))

    async def _fetch(self) -> dict[str | None, jwt.PyJWK]:
        response = await self._http.call("identity-provider", "GET", self._url, route="jwks")
        response.raise_for_status()  # a 4xx is a failure too, not an empty key set
        document = response.json()
        if not isinstance(document, dict):
            msg = "the JWKS is not a JSON object"
            raise ValueError(msg)  # noqa: TRY004 - one failure among the others caught above
        keys = jwt.PyJWKSet.from_dict(document)
        usable = {key.key_id: key for key in keys.keys if key.public_key_use in {None, "sig"}}
        if not usable:
            msg = "the JWKS holds no signing key"
            raise ValueError(msg)
        return usable


def _serves(key: jwt.PyJWK, algorithm: str) -> bool:
    """Only its family's algorithms (no RS/HS confusion); only the one its JWK names, if any;
    for an EC key only its curve's (PyJWK infers it from `crv` when the JWK names none)."""
    if not algorithm.startswith(_FAMILIES.get(key.key_type or "", ())):
        return False
    explicit = key._jwk_data.get("alg")  # noqa: SLF001 - PyJWK keeps the JWK it was given
    if explicit is None and key.key_type != "EC":
        return True
    return bool(key.algorithm_name == algorithm)
