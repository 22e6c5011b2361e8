"""The operator commands, run as `orders ...` runs them: JSON answers on stdout."""

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.errors import ConflictError
from core.events import CloudEvent
from orders.cli import main
from orders.settings import OrdersSettings
from tests.brokers import BrokerHarness
from tests.core.brokers.conftest import TYPE, event
from tests.core.outbox.conftest import insert_events


@pytest.fixture
def environment(database: OrdersSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE__NAME", database.database.name)
    monkeypatch.setenv("ORDERS_REDIS__URL", database.redis.url.get_secret_value())


async def answer(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run the command in a thread of its own: it starts its own event loop."""
    capsys.readouterr()
    await asyncio.to_thread(main, list(argv))
    return json.loads(capsys.readouterr().out)


async def until_dead_lettered(broker: BrokerHarness, stream: str) -> None:
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed goal
    while not await broker.dead_letters().entries(stream):
        assert time.monotonic() < deadline, f"nothing reached {stream}'s dead letters"
        await asyncio.sleep(0.05)


async def bury(engine: AsyncEngine) -> str:
    [event_id] = await insert_events(engine, [("agg", 1)])
    async with engine.begin() as connection:
        await connection.execute(
            text("""WITH gone AS (DELETE FROM outbox_events RETURNING *)
            INSERT INTO outbox_dead_events (id, event_id, source, type, subject, topic,
                aggregate_type, aggregate_id, aggregate_version, data, dead_reason)
            SELECT id, event_id, source, type, subject, topic, aggregate_type, aggregate_id,
                aggregate_version, data, 'refused permanently' FROM gone""")
        )
    return event_id


async def test_dead_events_are_listed_shown_and_replayed(
    engine: AsyncEngine, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = await bury(engine)
    [listed] = await answer(capsys, "dead-events", "list")
    assert (listed["event_id"], listed["dead_reason"]) == (event_id, "refused permanently")
    assert (await answer(capsys, "dead-events", "show", event_id))["aggregate_id"] == "agg"
    assert await answer(capsys, "dead-events", "replay", event_id) == {
        "event_id": event_id,
        "replay": True,
    }
    assert await answer(capsys, "dead-events", "list") == []
    assert (await answer(capsys, "dead-events", "discard", str(uuid.uuid4())))["discard"] is False


async def test_dead_letters_are_listed_shown_and_replayed_on_either_broker(
    broker: BrokerHarness,
    environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ORDERS_BROKER__KIND", broker.kind)
    monkeypatch.setenv(
        "ORDERS_BROKER__NATS_URL", broker.settings.broker.nats_url.get_secret_value()
    )

    async def reject(_: CloudEvent) -> None:
        raise ConflictError("order is cancelled")

    options = broker.settings.consumer.model_copy(update={"block_ms": 50})
    consumer = broker.consumer("payments", {TYPE: reject}, options, "c1")
    await consumer.ensure_groups()
    await broker.publish("payments", event("evt-9"))
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await until_dead_lettered(broker, "payments")
    finally:
        stop.set()
        await running

    stream = ("--stream", "payments")
    [letter] = await answer(capsys, "dead-letters", "list", *stream)
    assert (letter["id"], letter["dlq_reason"]) == ("evt-9", "rejected: order is cancelled")
    shown = await answer(capsys, "dead-letters", "show", letter["entry_id"], *stream)
    assert shown["id"] == "evt-9"
    replayed = await answer(capsys, "dead-letters", "replay", letter["entry_id"], *stream)
    assert replayed["replayed_as"] is not None
    assert await answer(capsys, "dead-letters", "list", *stream) == []
    assert [message["id"] for message in await broker.read("payments")] == ["evt-9", "evt-9"]


def test_an_action_on_one_item_needs_its_id(environment: None) -> None:
    with pytest.raises(SystemExit, match="needs an id"):
        main(["dead-events", "show"])
