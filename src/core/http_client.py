"""Calling other services: one httpx client per process, bounded retries, a circuit breaker per
downstream, the request id and trace context sent along, one log line per call.

The policy lives here, once: retries only for idempotent methods and only on connection errors,
502, 503 and 504 (honouring Retry-After), with exponential backoff and jitter; a downstream that
keeps failing opens its breaker, and calls then fail at once without touching the network.
"""

import asyncio
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from enum import IntEnum
from math import ceil
from typing import Any

import httpx
import structlog

from core.context import request_id_var
from core.errors import ServiceUnavailableError
from core.metrics import HttpMetrics
from core.settings import HttpClientSettings

log = structlog.get_logger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUS = frozenset({502, 503, 504})


class DownstreamUnavailableError(ServiceUnavailableError):
    """A downstream service could not answer: 503 with Retry-After, nothing was changed."""

    slug = "downstream-unavailable"
    title = "A service this one depends on is unavailable"

    def __init__(self, downstream: str, retry_after_seconds: int, why: str) -> None:
        super().__init__(
            f"the {downstream} service is unavailable ({why}); retry later",
            headers={"Retry-After": str(retry_after_seconds)},
        )
        self.downstream = downstream


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `reset_seconds` lets one trial through."""

    def __init__(self, threshold: int, reset_seconds: float) -> None:
        self._threshold = threshold
        self._reset_seconds = reset_seconds
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if time.monotonic() - self._opened_at >= self._reset_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> int:
        if self._opened_at is None:
            return 1
        left = self._reset_seconds - (time.monotonic() - self._opened_at)
        return max(1, round(left))

    def allow(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record(self, *, ok: bool) -> None:
        self._trial_running = False
        if ok:
            self._failures, self._opened_at = 0, None
            return
        self._failures += 1
        if self._opened_at is not None or self._failures >= self._threshold:
            self._opened_at = time.monotonic()  # (re)open: a failed trial starts a new wait


class ResilientClient:
    """The process's one outgoing HTTP client; `call` applies the policy to one downstream."""

    def __init__(self, settings: HttpClientSettings, metrics: HttpMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_keepalive_connections,
            ),
        )
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, downstream: str) -> CircuitBreaker:
        if downstream not in self._breakers:
            self._breakers[downstream] = CircuitBreaker(
                self._settings.breaker_threshold, self._settings.breaker_reset_seconds
            )
        return self._breakers[downstream]

    async def call(
        self,
        downstream: str,
        method: str,
        url: str,
        *,
        route: str,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send the request under the policy. `route` is the path template, for logs and
        metrics (`/v1/customers/{customer_id}`). Raises DownstreamUnavailableError when the
        downstream cannot answer: its breaker is open, or every allowed attempt failed."""
        breaker = self.breaker(downstream)
        attempts = self._settings.retries + 1 if method.upper() in IDEMPOTENT else 1
        deadline = time.monotonic() + self._settings.total_timeout_seconds
        headers = dict(kwargs.pop("headers", None) or {})
        request_id = request_id_var.get()
        if request_id is not None:
            headers.setdefault("X-Request-ID", request_id)
        failure = "no attempt was made"
        for attempt in range(1, attempts + 1):
            if not breaker.allow():
                self._observe(downstream, breaker)
                raise DownstreamUnavailableError(downstream, breaker.retry_after(), "circuit open")
            response = None
            try:
                with self._timed(downstream, method, url, route, attempt) as outcome:
                    response = await self._send(method, url, headers, deadline, outcome, kwargs)
            finally:
                # Whatever ended the attempt (even a cancellation), the breaker hears of it,
                # or a half-open trial would never finish.
                breaker.record(ok=response is not None and not response.is_server_error)
                self._observe(downstream, breaker)
            if response is not None and response.status_code not in RETRYABLE_STATUS:
                return response
            failure = outcome.get("error") or f"status {outcome.get('status')}"
            wait = _retry_after_seconds(response) if response is not None else None
            if wait is not None and wait > self._settings.backoff_max_seconds:
                # The downstream asks for longer than we may wait: pass its answer on.
                raise DownstreamUnavailableError(downstream, ceil(wait), failure)
            delay = self._delay(attempt, wait)
            if attempt == attempts or time.monotonic() + delay >= deadline:
                break
            await asyncio.sleep(delay)
        raise DownstreamUnavailableError(downstream, breaker.retry_after(), failure)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        deadline: float,
        outcome: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> httpx.Response | None:
        """One attempt; None when no response came back (lost connection, timeout)."""
        try:
            async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                response = await self._client.request(method, url, headers=headers, **kwargs)
        except (httpx.TransportError, TimeoutError) as error:
            outcome["error"] = type(error).__name__
            return None
        outcome["status"] = response.status_code
        return response

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        base = self._settings.backoff_base_seconds * 2 ** (attempt - 1)
        jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreads retries only
        delay = float(min(base, self._settings.backoff_max_seconds) * jitter)
        if retry_after is not None:  # the server knows better (within our bound, see call)
            delay = max(delay, retry_after)
        return delay

    @contextmanager
    def _timed(
        self, downstream: str, method: str, url: str, route: str, attempt: int
    ) -> Iterator[dict[str, Any]]:
        outcome: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield outcome
        finally:
            seconds = time.perf_counter() - started
            status = outcome.get("status")
            status_class = f"{status // 100}xx" if status else "error"
            self._metrics.client_requests.labels(downstream, method, route, status_class).inc()
            self._metrics.client_duration.labels(downstream, method, route).observe(seconds)
            log.info(
                "http.client.request",
                downstream=downstream,
                method=method,
                host=httpx.URL(url).host,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                attempt=attempt,
                **({"error": outcome["error"]} if "error" in outcome else {}),
            )

    def _observe(self, downstream: str, breaker: CircuitBreaker) -> None:
        self._metrics.client_breaker_state.labels(downstream).set(breaker.state)

    async def probe(self, downstream: str, url: str, seconds: float) -> bool:
        """For readiness: is the downstream answering? An open breaker counts as no; the probe
        itself is never retried and never counted by the breaker."""
        if self.breaker(downstream).state is not BreakerState.CLOSED:
            return False  # open, or half-open with a trial still to prove it back
        try:
            response = await self._client.get(url, timeout=seconds)
        except httpx.HTTPError:
            return False
        return not response.is_server_error

    async def aclose(self) -> None:
        await self._client.aclose()


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
