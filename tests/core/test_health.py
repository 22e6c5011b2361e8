"""Liveness names the build; readiness names what is down."""

import asyncio
import socket
import uuid

import httpx
from pydantic import SecretStr

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import orders_locked, serve_in_process, wait_for_lock_waiters


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_liveness_reports_version_and_build(database: OrdersSettings) -> None:
    build = database.build.model_copy(update={"commit": "3b1f2c4", "time": "2026-11-21T10:00:00Z"})
    app = create_app(database.model_copy(update={"build": build}))
    async with serve_in_process(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": database.service_name,
        "version": database.service_version,
        "commit": "3b1f2c4",
        "build_time": "2026-11-21T10:00:00Z",
    }


async def test_ready_when_postgres_and_redis_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


def unreachable(settings: OrdersSettings, *, postgres: bool, redis: bool) -> OrdersSettings:
    """The test settings with PostgreSQL and/or Redis pointed at a port nothing listens on."""
    update: dict[str, object] = {
        "server": settings.server.model_copy(update={"readiness_timeout_seconds": 0.5})
    }
    if redis:
        update["redis"] = settings.redis.model_copy(
            update={
                "url": SecretStr(f"redis://127.0.0.1:{closed_port()}/0"),
                "socket_timeout_seconds": 0.2,
            }
        )
    if postgres:
        update["database"] = settings.database.model_copy(
            update={"port": closed_port(), "pool_timeout_seconds": 0.2}
        )
    return settings.model_copy(update=update)


async def test_not_ready_when_postgres_is_down(database: OrdersSettings) -> None:
    app = create_app(unreachable(database, postgres=True, redis=True))
    async with serve_in_process(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"] == {"postgres": "down", "redis": "down"}
    assert body["detail"] == "not ready: postgres down"
    assert body["type"] == "/problems/service-unavailable"


async def test_ready_but_degraded_while_redis_is_down(database: OrdersSettings) -> None:
    # Requests are served without Redis: rate limits fail open, the customers cache is skipped.
    app = create_app(unreachable(database, postgres=False, redis=True))
    async with serve_in_process(app) as client:
        response = await client.get("/health/ready")
        placed = await client.post("/v1/orders", json=order_payload())
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "checks": {"postgres": "ok", "redis": "down"}}
    assert placed.status_code == 201


async def test_ready_while_requests_hold_every_pooled_connection(database: OrdersSettings) -> None:
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout_seconds": 0.2}
    changed = database.database.model_copy(update={**pool, "statement_timeout_ms": 0})
    app = create_app(database.model_copy(update={"database": changed}))
    async with serve_in_process(app) as client:
        async with orders_locked(database) as lock:
            # This POST holds the request pool's only connection while it waits on the lock.
            blocked = asyncio.create_task(client.post("/v1/orders", json=order_payload()))
            await wait_for_lock_waiters(lock, 1)
            response = await client.get("/health/ready")
            starved = await client.get(f"/v1/orders/{uuid.uuid4()}")
            assert not blocked.done()
        assert (await blocked).status_code == 201  # finished before the app shuts down
    assert starved.status_code == 503  # the request pool is exhausted ...
    assert response.status_code == 200  # ... yet the process can serve once it frees
    assert response.json()["checks"]["postgres"] == "ok"
