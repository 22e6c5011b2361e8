"""Idempotency keys through the API, on the real database: one effect however often it is sent."""

import asyncio
import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.idempotency import Idempotency, IdempotencyRecord, purge_expired
from core.outbox.tables import OutboxEvent
from orders.models import Order
from orders.schemas.orders import OrderCreate
from orders.services.orders import OrderService
from orders.settings import OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork
from orders.worker import run_publisher
from tests.orders.payloads import order_payload
from tests.support import bearer


async def count(engine: AsyncEngine, model: type[object]) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(model)) or 0)


def keyed(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


async def test_the_same_key_twice_places_one_order_and_answers_the_same(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    first = await client.post("/v1/orders", json=order_payload(), headers=headers)
    again = await client.post("/v1/orders", json=order_payload(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    for header in ("location", "etag", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(engine, Order) == 1
    assert await count(engine, OutboxEvent) == 1


async def test_the_same_request_in_another_spelling_is_the_same_request(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    payload = order_payload()
    await client.post("/v1/orders", json=payload, headers=headers)
    reordered = json.dumps(dict(reversed(payload.items())), indent=4)
    again = await client.post(
        "/v1/orders",
        content=reordered,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert await count(engine, Order) == 1


async def test_the_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    await client.post("/v1/orders", json=order_payload(), headers=headers)
    other = await client.post("/v1/orders", json=order_payload(note="other"), headers=headers)

    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert await count(engine, Order) == 1


async def test_twenty_concurrent_requests_with_one_key_place_one_order(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    responses = await asyncio.gather(
        *(client.post("/v1/orders", json=order_payload(), headers=headers) for _ in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, statuses
    created = [r for r in responses if r.status_code == 201]
    assert len({r.content for r in created}) == 1
    assert [r.headers.get("idempotent-replayed") for r in created].count(None) == 1
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["type"] == "/problems/idempotency-key-in-use"
        assert refused.headers["retry-after"] == "1"
    assert await count(engine, Order) == 1
    assert await count(engine, OutboxEvent) == 1


async def test_keys_belong_to_the_caller(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: OrdersSettings
) -> None:
    key = str(uuid.uuid4())
    await client.post("/v1/orders", json=order_payload(), headers=keyed(key))
    stranger = {**keyed(key), **bearer(settings, subject="someone-else")}
    theirs = await client.post("/v1/orders", json=order_payload(), headers=stranger)

    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert await count(engine, Order) == 2


async def test_a_transition_retried_with_its_key_is_not_a_conflict(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    headers = keyed()
    first = await client.post(f"/v1/orders/{order_id}/confirm", headers=headers)
    again = await client.post(f"/v1/orders/{order_id}/confirm", headers=headers)
    unkeyed = await client.post(f"/v1/orders/{order_id}/confirm")

    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert unkeyed.status_code == 409  # without the key it is a second confirmation
    assert await count(engine, OutboxEvent) == 2  # placed, confirmed once


async def test_a_refused_request_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    refused = await client.post("/v1/orders", json=order_payload(lines=[]), headers=headers)
    assert refused.status_code == 422
    assert await count(engine, IdempotencyRecord) == 0
    corrected = await client.post("/v1/orders", json=order_payload(), headers=headers)
    assert corrected.status_code == 201


async def test_an_expired_key_is_a_new_request_and_is_purged(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = keyed()
    await client.post("/v1/orders", json=order_payload(), headers=headers)
    async with engine.begin() as connection:
        await connection.execute(
            update(IdempotencyRecord).values(expires_at=func.now() - text("interval '1 second'"))
        )
    assert await purge_expired(engine) == 1
    assert await count(engine, IdempotencyRecord) == 0

    again = await client.post("/v1/orders", json=order_payload(), headers=headers)
    assert "idempotent-replayed" not in again.headers
    assert await count(engine, Order) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "spaces are not allowed"])
async def test_a_malformed_key_is_422(client: httpx.AsyncClient, key: str) -> None:
    response = await client.post(
        "/v1/orders", json=order_payload(), headers={"Idempotency-Key": key}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == ["header", "idempotency-key"]


async def test_the_answer_commits_with_the_change_or_neither_does(
    new_uow: Callable[[], OrdersUnitOfWork], engine: AsyncEngine
) -> None:
    def broken_presenter(_: object) -> object:
        raise RuntimeError("the answer could not be built")

    uow = new_uow()
    idempotency = Idempotency(key="k-1", subject="s", request_hash="h", ttl_seconds=60)
    idempotency.present_with(broken_presenter)  # type: ignore[arg-type]
    uow.answer_for(idempotency)
    with pytest.raises(RuntimeError, match="could not be built"):
        await OrderService(uow).place_order(OrderCreate.model_validate(order_payload()))

    assert await count(engine, Order) == 0
    assert await count(engine, OutboxEvent) == 0
    assert await count(engine, IdempotencyRecord) == 0


async def test_the_publisher_process_purges_expired_keys(
    client: httpx.AsyncClient, engine: AsyncEngine, database: OrdersSettings
) -> None:
    await client.post("/v1/orders", json=order_payload(), headers=keyed())
    await client.post("/v1/orders", json=order_payload(), headers=keyed())
    async with engine.begin() as connection:
        await connection.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.key == select(func.min(IdempotencyRecord.key)).scalar_subquery()
            )
            .values(expires_at=func.now() - text("interval '1 second'"))
        )
    idempotency = database.idempotency.model_copy(update={"purge_interval_seconds": 0.1})
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_publisher(database.model_copy(update={"idempotency": idempotency}), stop)
    )
    try:
        async with asyncio.timeout(20):
            while await count(engine, IdempotencyRecord) != 1:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker
    assert await count(engine, Order) == 2  # only the record went
