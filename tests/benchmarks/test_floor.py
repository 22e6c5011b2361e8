"""The benchmark's floor answers as the template does, and writes the same rows."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from benchmarks.floor import create_app
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import connect


@pytest.fixture
async def floor(database: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(database)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def outbox_row(settings: OrdersSettings, order_id: str) -> dict[str, Any]:
    connection = await connect(settings)
    try:
        row = await connection.fetchrow(
            "SELECT * FROM outbox_events WHERE aggregate_id = $1", order_id
        )
    finally:
        await connection.close()
    assert row is not None
    return dict(row)


def same_shape(row: dict[str, Any], order_id: str) -> dict[str, Any]:
    """An outbox row without what differs between two orders: ids, times, trace context."""
    varying = {"id", "event_id", "occurred_at", "available_at", "traceparent", "tracestate"}
    kept = {key: value for key, value in row.items() if key not in varying}
    return {
        key: value.replace(order_id, "ORDER") if isinstance(value, str) else value
        for key, value in kept.items()
    }


async def test_floor_reads_an_order_as_the_template_returns_it(
    client: httpx.AsyncClient, floor: httpx.AsyncClient
) -> None:
    placed = await client.post("/v1/orders", json=order_payload())

    from_template = await client.get(placed.headers["location"])
    from_floor = await floor.get(placed.headers["location"])

    assert from_floor.status_code == from_template.status_code == 200
    assert from_floor.json() == from_template.json() == placed.json()
    assert from_floor.headers["etag"] == from_template.headers["etag"]


async def test_floor_places_an_order_the_template_reads_back_with_the_same_event(
    client: httpx.AsyncClient, floor: httpx.AsyncClient, database: OrdersSettings
) -> None:
    by_template = await client.post("/v1/orders", json=order_payload())
    by_floor = await floor.post("/v1/orders", json=order_payload())

    assert by_floor.status_code == by_template.status_code == 201
    assert by_floor.headers["location"] == f"/v1/orders/{by_floor.json()['id']}"
    assert (await client.get(by_floor.headers["location"])).json() == by_floor.json()
    varying = {"id", "created_at", "updated_at"}
    body, expected = by_floor.json(), by_template.json()
    assert {k: v for k, v in body.items() if k not in varying | {"lines"}} == {
        k: v for k, v in expected.items() if k not in varying | {"lines"}
    }
    assert [{**line, "id": None} for line in body["lines"]] == [
        {**line, "id": None} for line in expected["lines"]
    ]
    floor_event = await outbox_row(database, body["id"])
    template_event = await outbox_row(database, expected["id"])
    assert same_shape(floor_event, body["id"]) == same_shape(template_event, expected["id"])


async def test_floor_lists_the_page_the_template_lists(
    client: httpx.AsyncClient, floor: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await floor.post("/v1/orders", json=order_payload())
        await client.post("/v1/orders", json=order_payload())

    path = "/v1/orders?page=2&per_page=4"
    from_template, from_floor = await client.get(path), await floor.get(path)

    assert from_floor.status_code == from_template.status_code == 200
    assert from_floor.json() == from_template.json()
    assert from_floor.json()["total"] == 6
