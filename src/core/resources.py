"""The process-wide clients a service needs, opened in the lifespan and closed after it."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from core.database import build_engine, build_session_factory
from core.events import EventRegistry
from core.http_client import ResilientClient
from core.jwks import token_verifier
from core.metrics import HttpMetrics
from core.outbox.writer import OutboxWriter
from core.process import drain_before_stopping
from core.rate_limit import RateLimiter
from core.settings import CoreSettings, RedisSettings
from core.tokens import TokenVerifier


@dataclass(frozen=True, slots=True)
class Resources:
    settings: CoreSettings
    engine: AsyncEngine
    # One connection of its own for readiness: requests filling `engine`'s pool cannot starve it.
    probe_engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    outbox: OutboxWriter
    metrics: HttpMetrics
    http: ResilientClient
    tokens: TokenVerifier
    rate_limiter: RateLimiter
    # Services this one calls, by name: their health URL. Down means degraded, not unready.
    downstreams: Mapping[str, str] = field(default_factory=dict)
    # Set on SIGTERM: readiness answers 503 while the server still serves (core.process).
    draining: asyncio.Event = field(default_factory=asyncio.Event)


def build_redis(settings: RedisSettings, *, blocking_ms: int = 0) -> Redis:
    """A Redis client with bounded waits; `blocking_ms` for a client that blocks on reads
    (XREADGROUP BLOCK): its socket waits that much longer, yet a dead connection still fails."""
    return Redis.from_url(
        settings.url.get_secret_value(),
        socket_timeout=blocking_ms / 1000 + settings.socket_timeout_seconds,
        socket_connect_timeout=settings.socket_timeout_seconds,
        health_check_interval=30,
    )


@asynccontextmanager
async def open_resources(
    settings: CoreSettings,
    events: EventRegistry,
    metrics: HttpMetrics,
    downstreams: Mapping[str, str] | None = None,
) -> AsyncIterator[Resources]:
    engine = build_engine(settings.database)
    metrics.watch_pool(engine)
    probe = settings.database.model_copy(
        update={
            "pool_size": 1,
            "max_overflow": 0,
            "pool_timeout_seconds": settings.server.readiness_timeout_seconds,
        }
    )
    probe_engine = build_engine(probe)
    redis = build_redis(settings.redis)
    http = ResilientClient(settings.http_client, metrics)
    draining = asyncio.Event()
    try:
        outbox = OutboxWriter(events, settings.events)
        sessions = build_session_factory(engine)
        with drain_before_stopping(settings.server.shutdown_delay_seconds, draining):
            yield Resources(
                settings,
                engine,
                probe_engine,
                sessions,
                redis,
                outbox,
                metrics,
                http,
                token_verifier(settings.auth, http),
                RateLimiter(redis, settings.rate_limit, metrics),
                dict(downstreams or {}),
                draining,
            )
    finally:
        await http.aclose()
        await redis.aclose()
        await probe_engine.dispose()
        await engine.dispose()


def resources_of(request: Request) -> Resources:
    """The resources the lifespan put in the request state."""
    resources: Resources = request.state.resources
    return resources


async def get_resources(request: Request) -> Resources:
    """`resources_of` as a dependency. Dependencies are `async def` even when they await
    nothing: FastAPI runs plain `def` ones in a thread pool, a thread hop per call."""
    return resources_of(request)
