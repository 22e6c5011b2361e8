"""Rate limits in Redis: a fixed window per route group and caller, shared by every worker.

Each check is one round trip (INCR, and EXPIRE on the window's first request). Over the limit the
request gets 429 with `Retry-After`; the 429 and every successful answer of a limited route carry
the `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers). When Redis
cannot be reached the limiter lets requests through (`fail_open`, the default), logs it at most
every few seconds and counts it.

Failed authentication has a limit of its own per client address (`FAILED_AUTHENTICATION`):
each failure counts, and an address over the limit is refused before its token is even looked at.
"""

import math
import time
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import DomainError, ServiceUnavailableError
from core.metrics import HttpMetrics
from core.settings import RateLimitSettings

log = structlog.get_logger(__name__)

_LOG_EVERY_SECONDS = 10.0
FAILED_AUTHENTICATION = "failed-authentication"


@dataclass(frozen=True, slots=True)
class Quota:
    group: str
    limit: int
    window_seconds: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{self.group}";q={self.limit};w={self.window_seconds}',
            "RateLimit": f'"{self.group}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimitedError(DomainError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, quota: Quota) -> None:
        super().__init__(
            f"more than {quota.limit} {quota.group} requests in {quota.window_seconds} s; "
            f"retry in {quota.reset_seconds} s",
            headers={"Retry-After": str(quota.reset_seconds), **quota.headers()},
        )


class RateLimiter:
    def __init__(self, redis: Redis, settings: RateLimitSettings, metrics: HttpMetrics) -> None:
        self._redis = redis
        self._settings = settings
        self._metrics = metrics
        self._last_warning = 0.0

    def limit_of(self, group: str) -> int:
        limits = {
            "reads": self._settings.reads,
            "writes": self._settings.writes,
            FAILED_AUTHENTICATION: self._settings.auth_failures,
        }
        return limits[group]

    async def check(self, group: str, caller: str) -> Quota | None:
        """Count one request; raises RateLimitedError over the limit. None: not limited."""
        return await self._count(group, caller, increment=True)

    async def refuse_failing(self, address: str) -> None:
        """429 for an address that failed authentication too often in this window."""
        await self._count(FAILED_AUTHENTICATION, address, increment=False)

    async def count_failure(self, address: str) -> None:
        """Count a failed authentication; 429 instead of 401 once the address is over."""
        await self._count(FAILED_AUTHENTICATION, address, increment=True)

    async def _count(self, group: str, caller: str, *, increment: bool) -> Quota | None:
        if not self._settings.enabled:
            return None
        window = self._settings.window_seconds
        now = time.time()
        start = int(now // window) * window
        key = f"rate-limit:{group}:{caller}:{start}"
        try:
            count = await self._increment(key, window) if increment else await self._peek(key)
        except (RedisError, OSError) as error:
            self._unavailable(group, error)
            return None
        limit = self.limit_of(group)
        reset = max(math.ceil(start + window - now), 1)
        quota = Quota(group, limit, window, max(limit - count, 0), reset)
        # A peek is over at the limit: the request it guards would be one more.
        if count > limit or (not increment and count >= limit):
            self._metrics.rate_limit_decisions.labels(group, "limited").inc()
            raise RateLimitedError(quota)
        if increment:
            self._metrics.rate_limit_decisions.labels(group, "allowed").inc()
        return quota

    async def _increment(self, key: str, window: int) -> int:
        async with self._redis.pipeline(transaction=False) as pipeline:
            pipeline.incr(key)
            pipeline.expire(key, window + 1, nx=True)
            count, _ = await pipeline.execute()
        return int(count)

    async def _peek(self, key: str) -> int:
        return int(await self._redis.get(key) or 0)

    def _unavailable(self, group: str, error: Exception) -> None:
        if not self._settings.fail_open:
            detail = "rate limits cannot be checked right now; retry later"
            raise ServiceUnavailableError(detail, headers={"Retry-After": "1"}) from error
        self._metrics.rate_limit_decisions.labels(group, "fail_open").inc()
        if time.monotonic() - self._last_warning >= _LOG_EVERY_SECONDS:
            self._last_warning = time.monotonic()
            log.warning("rate_limit.fail_open", group=group, error=str(error) or repr(error))
