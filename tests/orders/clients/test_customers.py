"""Placing an order asks a real customers service over HTTP: answers, failures, the breaker,
the cache, and what travels downstream."""

import asyncio
import datetime as dt
import email.utils
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from core.http_client import DownstreamUnavailableError
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.clients.customers_service import CustomersService, serving
from tests.orders.payloads import order_payload
from tests.support import RedisServer, serve_in_process

KNOWN, BLOCKED = str(uuid.uuid4()), str(uuid.uuid4())


def with_customers(settings: OrdersSettings, url: str, **client: object) -> OrdersSettings:
    """Timeouts no loaded machine reaches by accident; a test that wants one sets it short and
    makes the service slower by far. The service runs in the test's event loop, so its delay
    and the client's timeout are timers of one loop, fired in their order."""
    http = settings.http_client.model_copy(
        update={
            "connect_timeout_seconds": 10.0,
            "read_timeout_seconds": 10.0,
            "total_timeout_seconds": 60.0,
            "backoff_base_seconds": 0.1,
            "breaker_threshold": 3,
            "breaker_reset_seconds": 5.0,
            **client,
        }
    )
    customers = settings.customers.model_copy(update={"base_url": url})
    return settings.model_copy(update={"http_client": http, "customers": customers})


@pytest.fixture
async def customers() -> AsyncIterator[CustomersService]:
    service = CustomersService(customers={KNOWN: {"blocked": False}, BLOCKED: {"blocked": True}})
    async with serving(service):
        yield service


@pytest.fixture
async def api(
    database: OrdersSettings, customers: CustomersService
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(create_app(with_customers(database, customers.url))) as client:
        yield client


async def eventually_created(api: httpx.AsyncClient, customer_id: str) -> None:
    """POST orders until one is created; those refused before fail fast, asking nobody."""
    deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
    while (
        await api.post("/v1/orders", json=order_payload(customer_id=customer_id))
    ).status_code != 201:
        assert time.monotonic() < deadline, "the breaker never let a trial call through"
        await asyncio.sleep(0.1)


async def order_count(api: httpx.AsyncClient) -> int:
    return int((await api.get("/v1/orders")).json()["total"])


async def test_a_known_customer_orders(api: httpx.AsyncClient, customers: CustomersService) -> None:
    response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
    assert response.status_code == 201
    assert [path for _, path, _ in customers.lookups()] == [f"/v1/customers/{KNOWN}"]


async def test_an_unknown_customer_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/orders", json=order_payload(customer_id=str(uuid.uuid4())))
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "/problems/unknown-customer"
    assert [error["location"] for error in body["errors"]] == [["body", "customer_id"]]
    assert await order_count(api) == 0


async def test_a_blocked_customer_is_a_409(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/orders", json=order_payload(customer_id=BLOCKED))
    assert (response.status_code, response.json()["type"]) == (409, "/problems/customer-blocked")
    assert await order_count(api) == 0


async def test_a_slow_service_hits_the_read_timeout_and_nothing_is_written(
    database: OrdersSettings, customers: CustomersService
) -> None:
    customers.delay = 1.0  # well over the 0.3 s read timeout
    settings = with_customers(database, customers.url, read_timeout_seconds=0.3)
    async with serve_in_process(create_app(settings)) as api:
        response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
        customers.delay = 0
        count = await order_count(api)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/downstream-unavailable"
    assert "ReadTimeout" in response.json()["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert len(customers.lookups()) == 3  # one try and two retries, each timed out
    assert count == 0


async def test_a_flaky_service_succeeds_after_retries_with_growing_delays(
    api: httpx.AsyncClient, customers: CustomersService
) -> None:
    customers.failures = 2
    response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
    assert response.status_code == 201
    times = [at for at, _, _ in customers.lookups()]
    assert len(times) == 3
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    # Backoff 0.1 s, then 0.2 s, with +-20% jitter: the second wait's floor is above the first
    # wait's ceiling. Load only lengthens waits, so lower bounds alone hold on any machine.
    assert first_wait >= 0.1 * 0.8
    assert second_wait >= 0.2 * 0.8


async def test_retry_after_is_honoured_and_passed_on_when_too_long(
    api: httpx.AsyncClient, customers: CustomersService
) -> None:
    customers.failures, customers.retry_after = 1, "1"  # a second: within our 2 s bound
    assert (await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))).status_code == 201
    times = [at for at, _, _ in customers.lookups()]
    assert times[1] - times[0] >= 1.0

    customers.failures, customers.retry_after = 1, "120"  # longer than we may wait
    response = await api.post("/v1/orders", json=order_payload(customer_id=BLOCKED))
    assert (response.status_code, response.headers["retry-after"]) == (503, "120")
    assert len(customers.lookups()) == 3  # not retried


async def test_retry_after_as_an_http_date_is_honoured_and_passed_on(
    api: httpx.AsyncClient, customers: CustomersService
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    customers.failures, customers.retry_after = 1, email.utils.format_datetime(later, usegmt=True)
    response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
    assert response.status_code == 503
    assert 500 < int(response.headers["retry-after"]) <= 600  # ten minutes, as seconds from now
    assert len(customers.lookups()) == 1  # longer than we may wait: not retried

    # A date gone by, or one that does not parse, leaves the usual backoff: retried, answered.
    # Two customers: the first answer is cached, and a cached one asks nobody.
    past, unparseable = "Mon, 01 Jan 2001 00:00:00 GMT", "soon"
    for value, customer, status in ((past, KNOWN, 201), (unparseable, BLOCKED, 409)):
        customers.failures, customers.retry_after = 1, value
        ordered = await api.post("/v1/orders", json=order_payload(customer_id=customer))
        assert ordered.status_code == status, value
    assert len(customers.lookups()) == 5  # 1, then 2 for each: the 503 and the retry


async def test_a_cancelled_trial_call_does_not_wedge_the_breaker(database: OrdersSettings) -> None:
    from core.http_client import BreakerState, ResilientClient  # noqa: PLC0415
    from core.metrics import HttpMetrics  # noqa: PLC0415

    service = CustomersService(customers={KNOWN: {"blocked": False}}, delay=1.0)
    settings = with_customers(
        database,
        service.url,
        retries=0,
        breaker_threshold=1,
        breaker_reset_seconds=0.5,
        read_timeout_seconds=0.3,
    )
    client = ResilientClient(settings.http_client, HttpMetrics())
    url = f"{service.url}/v1/customers/{KNOWN}"
    async with serving(service):
        with pytest.raises(DownstreamUnavailableError):  # times out: the breaker opens
            await client.call("customers", "GET", url, route="r")
        await asyncio.sleep(0.6)  # half-open: the next call is the trial ...
        trial = asyncio.create_task(client.call("customers", "GET", url, route="r"))
        await asyncio.sleep(0.05)
        trial.cancel()  # ... and is cancelled, as a request timeout would
        with pytest.raises(asyncio.CancelledError):
            await trial
        assert client.breaker("customers").state is BreakerState.OPEN  # failed, not stuck
        service.delay = 0
        await asyncio.sleep(0.6)
        assert (await client.call("customers", "GET", url, route="r")).status_code == 200
    await client.aclose()


async def test_a_dead_service_opens_the_breaker_then_recovers(
    database: OrdersSettings,
) -> None:
    service = CustomersService(customers={KNOWN: {"blocked": False}})
    settings = with_customers(database, service.url, retries=0)
    async with serve_in_process(create_app(settings)) as api:
        for _ in range(3):  # nobody listens on the port: three failures open the breaker
            response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
            assert "ConnectError" in response.json()["detail"]
        # Within the 5 s reset: refused without trying to connect, or it would be a ConnectError.
        fast = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
        assert fast.status_code == 503
        assert "circuit open" in fast.json()["detail"]
        ready = (await api.get("/health/ready")).json()
        assert (ready["status"], ready["checks"]["customers"]) == ("degraded", "down")
        exposition = (await api.get("/metrics")).text
        assert 'http_client_circuit_state{downstream="customers"} 2.0' in exposition

        async with serving(service):
            await eventually_created(api, KNOWN)  # past the reset, one trial call goes through
            assert len(service.lookups()) == 1  # the calls before it failed fast
            assert (await api.get("/health/ready")).json()["status"] == "ready"
            exposition = (await api.get("/metrics")).text
            assert 'http_client_circuit_state{downstream="customers"} 0.0' in exposition


async def test_the_second_lookup_comes_from_the_cache(
    api: httpx.AsyncClient, customers: CustomersService, redis: Redis
) -> None:
    for _ in range(2):
        assert (
            await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
        ).status_code == 201
    assert len(customers.lookups()) == 1
    assert await redis.ttl(f"customers:{KNOWN}") > 0


async def test_unknown_customers_are_cached_for_less_time(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    stranger = str(uuid.uuid4())
    await api.post("/v1/orders", json=order_payload(customer_id=stranger))
    assert 0 < await redis.ttl(f"customers:{stranger}") <= 10
    assert await redis.get(f"customers:{KNOWN}") is None


async def test_a_redis_outage_only_skips_the_cache(
    database: OrdersSettings, customers: CustomersService, tmp_path: Path
) -> None:
    cache = RedisServer(tmp_path)  # a Redis of its own, which the test stops
    cache.start()
    redis = database.redis.model_copy(update={"url": SecretStr(cache.url)})
    settings = with_customers(database.model_copy(update={"redis": redis}), customers.url)
    async with serve_in_process(create_app(settings)) as api:
        cache.stop()
        for _ in range(2):
            response = await api.post("/v1/orders", json=order_payload(customer_id=KNOWN))
            assert response.status_code == 201
    assert len(customers.lookups()) == 2  # each asked the service; nothing failed


async def test_the_request_id_and_trace_context_reach_the_customers_service(
    api: httpx.AsyncClient, customers: CustomersService
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"  # pragma: allowlist secret
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    await api.post(
        "/v1/orders",
        json=order_payload(customer_id=KNOWN),
        headers={"X-Request-ID": "req-42", "traceparent": traceparent},
    )
    [(_, _, headers)] = customers.lookups()
    assert headers["x-request-id"] == "req-42"
    assert headers["traceparent"].split("-")[1] == trace_id


async def test_without_a_customers_service_the_check_is_off(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json=order_payload(customer_id=str(uuid.uuid4())))
    assert response.status_code == 201
    assert (await client.get("/health/ready")).json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_a_current_etag_gets_304_and_a_changed_order_200(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/orders", json=order_payload())
    url, etag = created.headers["location"], created.headers["etag"]
    fresh = await client.get(url, headers={"If-None-Match": etag})
    assert (fresh.status_code, fresh.content, fresh.headers["etag"]) == (304, b"", etag)
    assert (await client.get(url, headers={"If-None-Match": f"W/{etag}"})).status_code == 304
    await client.patch(url, json={"note": "changed"})
    changed = await client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["note"] == "changed"
