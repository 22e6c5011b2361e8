"""The process-wide clients a service needs, opened in the lifespan and closed after it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from core.database import build_engine, build_session_factory
from core.events import EventRegistry
from core.metrics import HttpMetrics
from core.outbox.writer import OutboxWriter
from core.settings import CoreSettings


@dataclass(frozen=True, slots=True)
class Resources:
    settings: CoreSettings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    redis: Redis
    outbox: OutboxWriter
    metrics: HttpMetrics


@asynccontextmanager
async def open_resources(
    settings: CoreSettings, events: EventRegistry, metrics: HttpMetrics
) -> AsyncIterator[Resources]:
    engine = build_engine(settings.database)
    metrics.watch_pool(engine)
    redis = Redis.from_url(
        settings.redis.url.get_secret_value(),
        socket_timeout=settings.redis.socket_timeout_seconds,
        socket_connect_timeout=settings.redis.socket_timeout_seconds,
    )
    try:
        outbox = OutboxWriter(events, settings.events)
        yield Resources(settings, engine, build_session_factory(engine), redis, outbox, metrics)
    finally:
        await redis.aclose()
        await engine.dispose()


def get_resources(request: Request) -> Resources:
    """The resources the lifespan put in the request state."""
    resources: Resources = request.state.resources
    return resources
