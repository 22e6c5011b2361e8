"""JetStream stream limits on a real nats-server: our streams carry the limits the settings
give, and a stream at its limit refuses new events, which wait in the outbox, rather than
dropping old messages its consumers have not read."""

from nats.js.api import DiscardPolicy, StreamConfig
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.jetstream import JetStream, stream_for
from core.jetstream.broker import JetStreamBroker
from core.metrics import OutboxMetrics
from core.outbox.broker import BrokerFullError
from core.outbox.publisher import OutboxPublisher
from core.outbox.tables import OutboxEvent
from core.settings import BrokerSettings
from tests.brokers import NatsHarness
from tests.core.brokers.conftest import event
from tests.core.outbox.conftest import (
    TOPIC,
    insert_events,
    pending,
    refusal,
    versions_by_aggregate,
)


async def stream_config(settings: BrokerSettings, topic: str = TOPIC) -> StreamConfig:
    jetstream = JetStream(settings, timeout_seconds=5)
    try:
        return (await (await jetstream.context()).stream_info(stream_for(topic))).config
    finally:
        await jetstream.close()


async def test_event_streams_carry_the_configured_limits(nats: NatsHarness) -> None:
    broker = nats.settings.broker.model_copy(
        update={"nats_max_msgs": 500, "nats_max_bytes": 2**20, "nats_max_age_seconds": 3600}
    )
    adapter = JetStreamBroker(JetStream(broker, timeout_seconds=5), timeout_seconds=5)
    try:
        assert await adapter.publish([(TOPIC, event("evt-1"))]) == [None]
    finally:
        await adapter.close()
    config = await stream_config(broker)
    assert (config.max_msgs, config.max_bytes, config.max_age) == (500, 2**20, 3600)
    assert config.discard == DiscardPolicy.NEW


async def test_a_stream_at_its_limit_keeps_the_events_in_the_outbox_until_there_is_room(
    nats: NatsHarness, engine: AsyncEngine
) -> None:
    broker = nats.settings.broker.model_copy(update={"nats_max_msgs": 5})
    adapter = JetStreamBroker(JetStream(broker, timeout_seconds=5), timeout_seconds=5)
    registry = CollectorRegistry()
    publisher = OutboxPublisher(engine, adapter, nats.settings.outbox, OutboxMetrics(registry))
    ids = await insert_events(engine, [("a", v) for v in range(1, 5)] + [("b", 1), ("b", 2)])
    ids += await insert_events(engine, [("a", 5), ("a", 6)])
    try:
        assert isinstance(await refusal(publisher, len(ids)), BrokerFullError)
        assert await nats.count(TOPIC) == 5  # the old messages are all kept
        assert await pending(engine) == 3  # and the events it refused wait, charged nothing
        async with engine.connect() as connection:
            assert await connection.scalar(select(func.max(OutboxEvent.attempts))) == 0
        assert registry.get_sample_value("outbox_broker_full_refusals_total") == 1

        # What the runbook says: raise the limit (or wait for max_age to make room).
        config = await stream_config(broker)
        config.max_msgs = 100
        jetstream = JetStream(broker, timeout_seconds=5)
        await (await jetstream.context()).update_stream(config)
        await jetstream.close()
        for _ in range(len(ids)):
            if not await publisher.publish_batch():
                break
    finally:
        await adapter.close()
    assert await pending(engine) == 0
    entries = await nats.read(TOPIC)
    assert sorted(entry["id"] for entry in entries) == sorted(ids)  # everything, once
    assert versions_by_aggregate(entries) == {"a": [1, 2, 3, 4, 5, 6], "b": [1, 2]}
