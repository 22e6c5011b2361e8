"""Payments close the loop: the consumer process confirms or cancels orders, exactly once,
on each broker."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.events import CloudEvent
from core.outbox.tables import InboxEvent, OutboxEvent
from orders.consumer import run_consumer
from tests.brokers import BrokerHarness
from tests.orders.payloads import order_payload
from tests.support import start_command

type Pay = Callable[..., Awaitable[str]]


@pytest.fixture
async def consumer(broker: BrokerHarness) -> AsyncIterator[None]:
    """The real consumer, as `orders consume` wires it, running in the background."""
    settings = broker.settings
    options = settings.consumer.model_copy(update={"block_ms": 50, "retry_base_seconds": 0.1})
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(settings.model_copy(update={"consumer": options}), stop)
    )
    yield
    stop.set()
    await task


@pytest.fixture
def pay(broker: BrokerHarness) -> Pay:
    """Plays the payments service: publishes one of its events to the payments topic."""

    async def publish(kind: str, order_id: str, event_id: str | None = None, **data: object) -> str:
        event_id = event_id or str(uuid.uuid4())
        body = {"payment_id": str(uuid.uuid4()), "order_id": order_id, **data}
        if kind == "succeeded":
            body = {"amount": "44.98", "currency": "EUR", **body}
        event = CloudEvent(
            id=event_id,
            source="/services/payments",
            type=f"payments.payment.{kind}.v1",
            subject=f"payment/{body['payment_id']}",
            time="2026-11-21T10:00:00Z",
            data=body,
            partitionkey=str(body["payment_id"]),
            sequence="00000000000000000001",
        )
        await broker.publish("payments", event)
        return event_id

    return publish


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def order_events(engine: AsyncEngine, order_id: str) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(OutboxEvent.type)
            .where(OutboxEvent.aggregate_id == order_id)
            .order_by(OutboxEvent.aggregate_version)
        )
        return list(rows.scalars())


async def status_of(client: httpx.AsyncClient, order_id: str) -> str:
    return str((await client.get(f"/v1/orders/{order_id}")).json()["status"])


async def dead_letters(broker: BrokerHarness) -> list[dict[str, str]]:
    return await broker.dead_letters().entries("payments")


async def test_a_successful_payment_confirms_the_order_once(
    client: httpx.AsyncClient, engine: AsyncEngine, broker: BrokerHarness, pay: Pay, consumer: None
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    event_id = await pay("succeeded", order_id)
    await pay("succeeded", order_id, event_id=event_id)  # redelivered by the payments service

    async def both_handled() -> bool:
        """Confirmed, and the copy delivered and acknowledged too: its verdict is in."""
        outstanding = await broker.outstanding("payments", broker.settings.consumer.group)
        return await status_of(client, order_id) == "confirmed" and outstanding == 0

    await eventually(both_handled)
    order = (await client.get(f"/v1/orders/{order_id}")).json()
    assert order["version"] == 2
    assert await order_events(engine, order_id) == [
        "orders.order.placed.v1",
        "orders.order.confirmed.v1",
    ]
    # The copy was recognised as a duplicate, not rejected by the order's rules.
    assert await dead_letters(broker) == []
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboxEvent)) == 1


async def test_a_failed_payment_cancels_the_order(
    client: httpx.AsyncClient, engine: AsyncEngine, pay: Pay, consumer: None
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await pay("failed", order_id, reason="card declined")

    async def cancelled() -> bool:
        return await status_of(client, order_id) == "cancelled"

    await eventually(cancelled)
    async with engine.connect() as connection:
        data = await connection.scalar(
            select(OutboxEvent.data).where(OutboxEvent.type == "orders.order.cancelled.v1")
        )
    assert data == {"order_id": order_id, "reason": "payment_failed"}


async def test_a_payment_for_a_cancelled_order_is_dead_lettered(
    client: httpx.AsyncClient, broker: BrokerHarness, pay: Pay, consumer: None
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await client.post(f"/v1/orders/{order_id}/cancel")
    await pay("succeeded", order_id)

    async def dead_lettered() -> bool:
        return len(await dead_letters(broker)) == 1

    await eventually(dead_lettered)
    [letter] = await dead_letters(broker)
    assert letter["dlq_reason"] == f"rejected: order {order_id} is cancelled; cannot confirm it"
    assert await status_of(client, order_id) == "cancelled"


async def test_a_payment_event_breaking_its_schema_is_dead_lettered(
    broker: BrokerHarness, pay: Pay, consumer: None
) -> None:
    await pay("failed", "not-a-uuid", reason="card declined")

    async def dead_lettered() -> bool:
        return len(await dead_letters(broker)) == 1

    await eventually(dead_lettered)
    [letter] = await dead_letters(broker)
    assert letter["dlq_reason"].startswith("rejected: 1 validation error for PaymentFailed")


@pytest.mark.slow  # a real process, seconds: CI runs it, test-fast does not
async def test_the_consumer_process_confirms_and_stops_cleanly(
    client: httpx.AsyncClient, broker: BrokerHarness, pay: Pay
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    process = start_command(broker.settings, "consume", ORDERS_CONSUMER__BLOCK_MS="100")
    try:
        await pay("succeeded", order_id)

        async def confirmed() -> bool:
            return await status_of(client, order_id) == "confirmed"

        await eventually(confirmed, seconds=20)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode()
    assert b'"event": "consumer.message_processed"' in output
    assert f'"broker": "{broker.kind}"'.encode() in output
