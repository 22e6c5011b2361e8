"""Readiness under trouble while the example's routes keep serving: Redis away, and requests
holding every pooled connection."""

import asyncio
import uuid

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.core.test_health import unreachable
from tests.orders.payloads import order_payload
from tests.support import orders_locked, serve_in_process, wait_for_lock_waiters


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
