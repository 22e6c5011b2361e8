"""Liveness names the build; readiness names what is down."""

import socket

import httpx
from pydantic import SecretStr

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.support import serve_in_process


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
