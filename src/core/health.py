"""Liveness and readiness endpoints, shared by every service."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from core.errors import PROBLEM_MEDIA_TYPE, Problem, problem_response
from core.resources import Resources, get_resources

router = APIRouter(prefix="/health", tags=["health"])
metrics_router = APIRouter()


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    service: str = Field(examples=["billing"])
    version: str = Field(examples=["0.1.0"])
    commit: str = Field(examples=["3b1f2c4"])
    build_time: str = Field(examples=["2026-11-21T10:00:00Z"])


class Readiness(BaseModel):
    status: Literal["ready", "degraded"] = Field(
        description="degraded: a non-critical downstream is down; requests still served."
    )
    checks: dict[str, Literal["ok", "down"]] = Field(
        examples=[{"postgres": "ok", "redis": "ok", "customers": "down"}]
    )


class NotReady(Problem):
    checks: dict[str, Literal["ok", "down"]] = Field(
        examples=[{"postgres": "down", "redis": "ok"}], description="Empty while shutting down."
    )


ResourcesDep = Annotated[Resources, Depends(get_resources)]


@router.get("")
async def liveness(resources: ResourcesDep) -> Liveness:
    """Answers while the process serves; names the build that is running."""
    settings = resources.settings
    return Liveness(
        service=settings.service_name,
        version=settings.service_version,
        commit=settings.build.commit,
        build_time=settings.build.time,
    )


@router.get(
    "/ready",
    responses={503: {"model": NotReady, "content": {PROBLEM_MEDIA_TYPE: {}}}},
)
async def readiness(request: Request, resources: ResourcesDep) -> Any:
    """Ready when this process can serve requests: PostgreSQL answers within the readiness
    timeout, and no SIGTERM has come. `degraded` (still 200) when Redis or a service this one
    calls is down: requests are served without them."""
    if resources.draining.is_set():
        return problem_response(
            request.scope, 503, "not ready: shutting down", extra={"checks": {}}
        )
    timeout = resources.settings.server.readiness_timeout_seconds
    downstreams = resources.downstreams
    results = await asyncio.gather(
        _check(lambda: _ping_postgres(resources), timeout),
        _check(lambda: _ping_redis(resources), timeout),
        *(_probe(resources, name, url, timeout) for name, url in downstreams.items()),
    )
    checks = dict(zip(("postgres", "redis", *downstreams), results, strict=True))
    for name, state in checks.items():
        resources.metrics.dependency_up.labels(name).set(1 if state == "ok" else 0)
    # Only PostgreSQL is critical: without Redis rate limits fail open and caches are skipped.
    if checks["postgres"] == "down":
        return problem_response(
            request.scope, 503, "not ready: postgres down", extra={"checks": checks}
        )
    readiness = Readiness(
        status="degraded" if "down" in checks.values() else "ready", checks=checks
    )
    return JSONResponse(readiness.model_dump())


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    """Prometheus exposition of this process (of every worker, in multiprocess mode)."""
    return Response(resources.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _check(probe: Callable[[], Awaitable[object]], within: float) -> Literal["ok", "down"]:
    try:
        async with asyncio.timeout(within):
            await probe()
    except Exception:  # noqa: BLE001 - any failure means the dependency is not usable
        return "down"
    return "ok"


async def _probe(resources: Resources, name: str, url: str, within: float) -> Literal["ok", "down"]:
    try:
        async with asyncio.timeout(within):  # one bound for the whole probe
            return "ok" if await resources.http.probe(name, url, within) else "down"
    except TimeoutError:
        return "down"


async def _ping_postgres(resources: Resources) -> None:
    async with resources.probe_engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _ping_redis(resources: Resources) -> None:
    await resources.redis.ping()
