"""A retried POST /v1/orders with its Idempotency-Key gets the stored answer before any call to
the customers service: what that service says now, or whether it answers at all, does not matter."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_session_factory
from core.idempotency import Idempotency
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.clients.customers_service import CustomersService, serving
from tests.orders.clients.test_customers import with_customers
from tests.orders.payloads import order_payload
from tests.support import serve_in_process

CUSTOMER = str(uuid.uuid4())


@pytest.fixture
def customers() -> CustomersService:
    return CustomersService(customers={CUSTOMER: {"blocked": False}})


@pytest.fixture
async def api(
    database: OrdersSettings, customers: CustomersService
) -> AsyncIterator[httpx.AsyncClient]:
    settings = with_customers(database, customers.url, retries=0)
    async with serve_in_process(create_app(settings)) as client:
        yield client


async def place(api: httpx.AsyncClient, key: str) -> httpx.Response:
    return await api.post(
        "/v1/orders", json=order_payload(customer_id=CUSTOMER), headers={"Idempotency-Key": key}
    )


async def test_a_retry_is_replayed_although_the_customer_was_blocked_since(
    api: httpx.AsyncClient, customers: CustomersService, redis: Redis
) -> None:
    key = str(uuid.uuid4())
    async with serving(customers):
        first = await place(api, key)
        assert first.status_code == 201
        customers.customers[CUSTOMER] = {"blocked": True}
        await redis.delete(f"customers:{CUSTOMER}")  # the cache would hide the change
        lookups = len(customers.lookups())

        again = await place(api, key)

        assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
        assert again.content == first.content
        assert len(customers.lookups()) == lookups  # answered without asking


async def test_a_retry_is_replayed_while_the_customers_service_is_down(
    api: httpx.AsyncClient, customers: CustomersService, redis: Redis
) -> None:
    key = str(uuid.uuid4())
    async with serving(customers):
        first = await place(api, key)
    await redis.delete(f"customers:{CUSTOMER}")

    again = await place(api, key)  # nobody listens on the service's port any more

    assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true")
    assert again.content == first.content
    assert (await api.get("/v1/orders")).json()["total"] == 1


async def test_a_key_in_progress_is_409_even_while_the_customers_service_is_down(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    key = str(uuid.uuid4())
    in_progress = Idempotency(key=key, subject="tester", request_hash="", ttl_seconds=60)
    async with build_session_factory(engine)() as session, session.begin():
        await in_progress.claim(session)  # holds the key, as a request in its transaction does

        response = await place(api, key)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/idempotency-key-in-use"
    assert response.headers["retry-after"] == "1"
