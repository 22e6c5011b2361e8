"""SIGTERM on the real server process: readiness turns 503 first, then the example's requests
in flight drain."""

import asyncio
import signal
import time

import httpx
import pytest

from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import (
    bearer,
    free_port,
    orders_locked,
    start_command,
    wait_for_lock_waiters,
    wait_until_ready,
)

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


async def test_sigterm_turns_readiness_503_first_then_drains_requests_in_flight(
    database: OrdersSettings,
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_command(
        database,
        "serve",
        ORDERS_SERVER__PORT=str(port),
        # Long, so no deadline is raced: the second SIGTERM below ends the delay.
        ORDERS_SERVER__SHUTDOWN_DELAY_SECONDS="120",
        ORDERS_DATABASE__STATEMENT_TIMEOUT_MS="0",
        ORDERS_HTTP__REQUEST_TIMEOUT_SECONDS="120",
    )
    try:
        await asyncio.to_thread(wait_until_ready, base_url, process)
        token = bearer(database)
        async with httpx.AsyncClient(base_url=base_url, headers=token, timeout=120) as client:
            async with orders_locked(database) as lock:
                in_flight = asyncio.create_task(client.post("/v1/orders", json=order_payload()))
                await wait_for_lock_waiters(lock, 1)

                process.send_signal(signal.SIGTERM)
                readiness = await until_not_ready(base_url)
                assert readiness.headers["content-type"] == "application/problem+json"
                assert readiness.json()["detail"] == "not ready: shutting down"
                # Only readiness changed: everything else is still served, on new connections.
                assert (await fresh_get(f"{base_url}/health")).status_code == 200

                process.send_signal(signal.SIGTERM)  # a second one stops the delay early
                await until_refused(base_url)
                assert not in_flight.done()
            placed = await in_flight  # the lock is released: the request finishes
        assert placed.status_code == 201
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
        assert process.returncode in {0, -signal.SIGTERM}
        assert b"Application shutdown complete" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def until_not_ready(base_url: str) -> httpx.Response:
    """Until readiness answers 503; the server must keep listening meanwhile."""
    deadline = time.monotonic() + 30
    while True:
        try:
            response = await fresh_get(f"{base_url}/health/ready")
        except httpx.TransportError as error:
            pytest.fail(f"the server stopped listening before readiness turned 503: {error!r}")
        if response.status_code == 503:
            return response
        assert time.monotonic() < deadline, "readiness never turned 503"
        await asyncio.sleep(0.05)


async def until_refused(base_url: str) -> None:
    """Until a new connection is refused: the server is shutting down."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await fresh_get(f"{base_url}/health")
        except httpx.TransportError:
            return
        assert time.monotonic() < deadline, "the server never stopped accepting"
        await asyncio.sleep(0.05)


async def fresh_get(url: str) -> httpx.Response:
    """A GET on a new connection, as a probe or a new client makes it."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)
