"""The customers service, asked whether a customer exists and may order; answers are cached."""

import json
import uuid
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.http_client import DownstreamUnavailableError, ResilientClient
from orders.settings import CustomersSettings

log = structlog.get_logger(__name__)

DOWNSTREAM = "customers"
ROUTE = "/v1/customers/{customer_id}"
_UNKNOWN = "unknown"  # cached, briefly, so a typo'd id does not hammer the service


@dataclass(frozen=True, slots=True)
class Customer:
    id: uuid.UUID
    blocked: bool


class CustomersClient:
    """Cache-aside over `GET {base}/v1/customers/{id}`; a Redis outage only skips the cache."""

    def __init__(self, http: ResilientClient, redis: Redis, settings: CustomersSettings) -> None:
        self._http = http
        self._redis = redis
        self._settings = settings

    async def find(self, customer_id: uuid.UUID) -> Customer | None:
        cached = await self._cached(customer_id)
        if cached is not None:
            return None if cached == _UNKNOWN else _customer(customer_id, json.loads(cached))
        url = f"{self._settings.base_url}{ROUTE.format(customer_id=customer_id)}"
        response = await self._http.call(DOWNSTREAM, "GET", url, route=ROUTE)
        if response.status_code == 404:  # noqa: PLR2004 - HTTP's "no such customer"
            await self._cache(customer_id, _UNKNOWN, self._settings.negative_cache_ttl_seconds)
            return None
        if not response.is_success:
            reason = f"status {response.status_code}"
            raise DownstreamUnavailableError(DOWNSTREAM, retry_after_seconds=1, why=reason)
        body = response.json()
        await self._cache(customer_id, json.dumps(body), self._settings.cache_ttl_seconds)
        return _customer(customer_id, body)

    async def _cached(self, customer_id: uuid.UUID) -> str | None:
        try:
            value = await self._redis.get(_key(customer_id))
        except RedisError as error:
            log.warning("customers.cache_unavailable", error=str(error))
            return None
        if value is None:
            return None
        return value if isinstance(value, str) else value.decode()

    async def _cache(self, customer_id: uuid.UUID, value: str, ttl_seconds: int) -> None:
        try:
            await self._redis.set(_key(customer_id), value, ex=ttl_seconds)
        except RedisError as error:
            log.warning("customers.cache_unavailable", error=str(error))


def _key(customer_id: uuid.UUID) -> str:
    return f"customers:{customer_id}"


def _customer(customer_id: uuid.UUID, body: dict[str, object]) -> Customer:
    return Customer(id=customer_id, blocked=bool(body.get("blocked", False)))
