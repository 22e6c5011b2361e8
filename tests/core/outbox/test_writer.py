"""The write side: an event row in the business transaction, or nothing at all."""

import uuid
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_session_factory
from core.events import EventPayload, EventRegistry, EventTooLargeError, UnknownEventTypeError
from core.outbox.tables import OutboxEvent
from core.outbox.writer import OutboxWriter
from orders.events import ORDER_EVENTS, OrderNoteChanged
from orders.models import Order
from orders.settings import SERVICE, OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork
from tests.orders.payloads import order_payload
from tests.support import NewUow


async def outbox_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(OutboxEvent.__table__).order_by(OutboxEvent.id))
        return [dict(row) for row in rows.mappings()]


async def test_placing_an_order_writes_its_event_in_the_same_transaction(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    order = (await client.post("/v1/orders", json=order_payload())).json()
    [row] = await outbox_rows(engine)
    assert row["type"] == "orders.order.placed.v1"
    assert row["source"] == "/services/orders"
    assert row["subject"] == f"order/{order['id']}"
    assert (row["aggregate_type"], row["aggregate_id"], row["aggregate_version"]) == (
        "order",
        order["id"],
        1,
    )
    assert row["topic"] == "orders"
    assert row["dataschema"] == f"urn:{SERVICE}:event-schema:{row['type']}"
    assert row["data"]["total"] == "44.98"
    assert row["data"]["lines"][0] == {"sku": "SKU-1001", "quantity": 2, "unit_price": "19.99"}
    assert uuid.UUID(str(row["event_id"])).version == 7


async def test_every_change_records_one_event_with_the_new_version(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await client.patch(f"/v1/orders/{order_id}", json={"note": "new note"})
    lines = [{"sku": "SKU-9", "quantity": 1, "unit_price": "1.00"}]
    await client.patch(f"/v1/orders/{order_id}", json={"lines": lines})
    await client.patch(f"/v1/orders/{order_id}", json={})  # no change, no event
    await client.post(f"/v1/orders/{order_id}/confirm")
    rows = await outbox_rows(engine)
    assert [(r["type"], r["aggregate_version"]) for r in rows] == [
        ("orders.order.placed.v1", 1),
        ("orders.order.note_changed.v1", 2),
        ("orders.order.lines_changed.v1", 3),
        ("orders.order.confirmed.v1", 4),
    ]
    assert rows[2]["data"]["note"] == "new note"
    assert rows[3]["data"]["total"] == "1.00"


async def test_a_refused_change_writes_no_event(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await client.post(f"/v1/orders/{order_id}/cancel")
    assert (await client.post(f"/v1/orders/{order_id}/cancel")).status_code == 409
    assert (await client.post("/v1/orders", json=order_payload(lines=[]))).status_code == 422
    rows = await outbox_rows(engine)
    assert [r["type"] for r in rows] == ["orders.order.placed.v1", "orders.order.cancelled.v1"]
    assert rows[1]["data"] == {"order_id": order_id, "reason": "requested"}


class Oversized(EventPayload):
    name: ClassVar[str] = "order.oversized"
    topic: ClassVar[str] = "orders"
    aggregate_type: ClassVar[str] = "order"

    blob: str


async def test_an_unregistered_event_is_refused_when_recorded(new_uow: NewUow) -> None:
    order = Order(id=uuid.uuid4(), customer_id=uuid.uuid4(), currency="EUR", lines=[])
    async with new_uow() as uow:
        uow.orders.add(order)
        with pytest.raises(UnknownEventTypeError):
            uow.add_event(order, Oversized(blob="x"))


async def test_an_event_over_64_kib_is_refused_when_recorded(
    engine: AsyncEngine, settings: OrdersSettings
) -> None:
    registry = EventRegistry("orders", [*ORDER_EVENTS, Oversized])
    uow = OrdersUnitOfWork(build_session_factory(engine), OutboxWriter(registry, settings.events))
    order = Order(id=uuid.uuid4(), customer_id=uuid.uuid4(), currency="EUR", lines=[])
    async with uow:
        uow.orders.add(order)
        uow.add_event(order, Oversized(blob="x" * 60_000))  # under the limit: accepted
        uow._events.clear()  # the first was fine; try the second on its own
        with pytest.raises(EventTooLargeError):
            uow.add_event(order, Oversized(blob="x" * 70_000))


async def test_one_aggregate_gets_one_event_per_commit(new_uow: NewUow) -> None:
    order = Order(id=uuid.uuid4(), customer_id=uuid.uuid4(), currency="EUR", lines=[])
    async with new_uow() as uow:
        uow.orders.add(order)
        uow.add_event(order, OrderNoteChanged(order_id=order.id, note="a"))
        with pytest.raises(RuntimeError, match="already has an event"):
            uow.add_event(order, OrderNoteChanged(order_id=order.id, note="b"))


async def test_an_event_for_an_unchanged_aggregate_fails_the_commit_and_writes_nothing(
    client: httpx.AsyncClient, new_uow: NewUow, engine: AsyncEngine
) -> None:
    order_id = uuid.UUID((await client.post("/v1/orders", json=order_payload())).json()["id"])
    async with new_uow() as uow:
        order = await uow.orders.get(order_id)
        assert order is not None
        uow.add_event(order, OrderNoteChanged(order_id=order.id, note=order.note))
        with pytest.raises(RuntimeError, match="unchanged aggregate"):
            await uow.commit()
    assert [row["type"] for row in await outbox_rows(engine)] == ["orders.order.placed.v1"]
