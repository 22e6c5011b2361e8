"""The outbox publisher on each broker: order, valid envelopes, replicas, refusals, outages."""

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.brokers import build_broker
from core.outbox.broker import BrokerUnavailableError
from core.outbox.dead import list_dead_events
from core.outbox.publisher import OutboxPublisher
from tests.brokers import BrokerHarness
from tests.conftest import NewPublisher
from tests.core.outbox.conftest import (
    TOPIC,
    insert_events,
    pending,
    strictly_parsed,
    versions_by_aggregate,
)


async def test_events_are_published_in_version_order_and_removed(
    engine: AsyncEngine, broker: BrokerHarness, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)])
    publisher = new_publisher(broker.adapter())
    assert await publisher.publish_batch() == 5
    entries = await broker.read(TOPIC)
    assert sorted(e["id"] for e in entries) == sorted(ids)
    assert versions_by_aggregate(entries) == {"a": [1, 2, 3], "b": [1, 2]}
    assert await pending(engine) == 0
    assert await publisher.publish_batch() == 0
    assert await broker.count(TOPIC) == 5


async def test_every_published_message_is_a_valid_cloudevent(
    engine: AsyncEngine, broker: BrokerHarness, new_publisher: NewPublisher
) -> None:
    await insert_events(engine, [("a", 1), ("a", 2)])
    await new_publisher(broker.adapter()).publish_batch()
    for entry in await broker.read(TOPIC):
        event = strictly_parsed(entry)  # the CloudEvents SDK's strict parser
        assert event["specversion"] == "1.0"
        assert event["type"] == "orders.order.note_changed.v1"
        assert event["datacontenttype"] == "application/json"
        assert event["sequence"] == f"{int(entry['sequence']):020d}"
        assert event.data == json.loads(entry["data"])


async def test_two_publishers_at_once_publish_each_event_once_in_order(
    engine: AsyncEngine, broker: BrokerHarness, new_publisher: NewPublisher
) -> None:
    ids = await insert_events(engine, [(f"k{k}", v) for v in range(1, 11) for k in range(30)])
    first = new_publisher(broker.adapter(), batch_size=20)
    second = new_publisher(broker.adapter(), batch_size=20)

    async def drain(publisher: OutboxPublisher) -> None:
        while await publisher.publish_batch():
            pass

    await asyncio.gather(drain(first), drain(second))
    entries = await broker.read(TOPIC)
    assert sorted(e["id"] for e in entries) == sorted(ids)
    assert all(v == list(range(1, 11)) for v in versions_by_aggregate(entries).values())


async def test_a_message_the_broker_never_takes_dies_at_once_and_holds_its_aggregate(
    engine: AsyncEngine, broker: BrokerHarness, new_publisher: NewPublisher
) -> None:
    await broker.refuse(TOPIC)
    [first, _] = await insert_events(engine, [("poison", 1), ("poison", 2)])
    publisher = new_publisher(broker.adapter())
    assert await publisher.publish_batch() == 0
    [dead] = await list_dead_events(engine)
    assert (str(dead["event_id"]), dead["dead_reason"]) == (first, "refused permanently")
    assert await publisher.publish_batch() == 0  # poison/2 waits behind the dead event
    assert await pending(engine) == 1


async def test_a_stopped_broker_costs_no_attempt_and_a_restarted_one_gets_everything(
    engine: AsyncEngine, broker: BrokerHarness, new_publisher: NewPublisher, tmp_path: Path
) -> None:
    server, own = broker.own_server(tmp_path)
    server.start()
    settings = own.settings
    outbox = settings.outbox.model_copy(update={"publish_timeout_seconds": 1})
    publisher = new_publisher(build_broker(settings.model_copy(update={"outbox": outbox})))
    try:
        await insert_events(engine, [("a", 1)])
        assert await publisher.publish_batch() == 1
        server.stop()
        await insert_events(engine, [("a", 2), ("b", 1)])
        with pytest.raises(BrokerUnavailableError):
            await publisher.publish_batch()
        async with engine.connect() as connection:
            attempts = await connection.scalars(text("SELECT attempts FROM outbox_events"))
            assert list(attempts) == [0, 0]  # an outage is nobody's fault
        server.start()
        for _ in range(100):  # the client reconnects on its own; a bound, not a goal
            with contextlib.suppress(BrokerUnavailableError):
                await publisher.publish_batch()
            if not await pending(engine):
                break
            await asyncio.sleep(0.2)
        assert await pending(engine) == 0
    finally:
        await publisher._broker.close()
        await own.close()
        server.stop()
