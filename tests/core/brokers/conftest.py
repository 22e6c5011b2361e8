"""Fixtures for the broker suite: consumers on the broker under test, and events to feed them."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_session_factory
from core.events import CloudEvent
from core.handling import Consumer, Handler
from core.outbox.writer import OutboxWriter
from core.unit_of_work import InboxEntry, UnitOfWork
from orders.settings import SERVICE, OrdersSettings
from tests.brokers import BrokerHarness

STREAM = "payments"
TYPE = "payments.payment.succeeded.v1"
GROUP = SERVICE  # the consumer group of the service
type NewConsumer = Callable[..., Consumer]


def event(
    event_id: str = "evt-1", *, partitionkey: str | None = None, sequence: int = 1, **data: Any
) -> CloudEvent:
    return CloudEvent(
        id=event_id,
        source="/services/payments",
        type=TYPE,
        subject=f"payment/{event_id}",
        time="2026-11-21T10:00:00Z",
        data=data or {"n": 1},
        partitionkey=partitionkey or event_id,
        sequence=f"{sequence:020d}",
    )


@pytest.fixture
def new_consumer(broker: BrokerHarness, settings: OrdersSettings) -> NewConsumer:
    def build(handler: Handler, name: str = "c1", **overrides: Any) -> Consumer:
        options = settings.consumer.model_copy(update={"block_ms": 50, **overrides})
        return broker.consumer(STREAM, {TYPE: handler}, options, name)

    return build


async def run_until(
    consumers: Sequence[Consumer], done: Callable[[], Awaitable[bool]], seconds: float = 60
) -> None:
    """Run the consumers until `done()` holds; the bound is for a loaded machine, not a goal.

    Where a test asserts something did not happen, `done` waits for the group to have finished
    every message (`finished`): nothing is left that could still make it happen."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    try:
        deadline = time.monotonic() + seconds
        while not await done():
            assert time.monotonic() < deadline, "the consumers never got there"
            assert not any(task.done() for task in tasks), "a consumer stopped by itself"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def finished(broker: BrokerHarness, *also: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """True once each of `also` holds and the group has nothing left to handle or answer."""

    async def check() -> bool:
        return all(condition() for condition in also) and not await broker.outstanding(
            STREAM, GROUP
        )

    return check


def recorder() -> tuple[list[CloudEvent], Handler]:
    seen: list[CloudEvent] = []

    async def handle(item: CloudEvent) -> None:
        seen.append(item)

    return seen, handle


def applied_once(
    engine: AsyncEngine, outbox: OutboxWriter, hold_seconds: float = 0.0
) -> tuple[list[str], Handler]:
    """A handler whose effect commits with its inbox row, and the events it took effect for."""
    sessions = build_session_factory(engine)
    effects: list[str] = []

    async def apply_once(item: CloudEvent) -> None:
        async with UnitOfWork(sessions, outbox, InboxEntry(GROUP, item.source, item.id)) as uow:
            await asyncio.sleep(hold_seconds)
            await uow.commit()
        effects.append(item.id)

    return effects, apply_once
