"""What only the JetStream consumer does: the advisory-driven dead letters, outages at start,
and dead letters listed past replayed ones."""

import asyncio
import copy
import time
from pathlib import Path

from nats import connect
from nats.aio.client import Client
from structlog.testing import capture_logs

from core.errors import ConflictError
from core.events import CloudEvent
from core.jetstream import stream_for
from core.jetstream.consumer import JetStreamConsumer
from orders.settings import OrdersSettings
from tests.brokers import NatsHarness
from tests.core.brokers.conftest import GROUP, STREAM, TYPE, event, finished, recorder, run_until


async def test_a_delivery_left_unanswered_the_last_time_is_dead_lettered_by_the_advisory(
    nats: NatsHarness, settings: OrdersSettings
) -> None:
    seen, handle = recorder()
    options = settings.consumer.model_copy(
        update={"block_ms": 50, "max_retries": 0, "handler_timeout_seconds": 0.3}
    )
    consumer = nats.consumer(STREAM, {TYPE: handle}, options, "c1")
    await consumer.ensure_groups()
    await nats.publish(STREAM, event())
    # Its only delivery goes to a consumer that dies: nobody can decide, JetStream tells.
    await nats.abandon_one(STREAM, GROUP)

    async def lettered() -> bool:
        return bool(await nats.dead_letters().entries(STREAM)) and await finished(nats)()

    await run_until([consumer], lettered)
    assert seen == []
    [letter] = await nats.dead_letters().entries(STREAM)
    assert (letter["dlq_reason"], letter["dlq_attempts"]) == ("attempts exhausted", "1")
    assert (letter["id"], letter["dlq_entry_id"]) == ("evt-1", "1")
    assert await nats.outstanding(STREAM, GROUP) == 0


async def test_a_consumer_started_while_nats_is_down_consumes_once_it_is_up(
    nats: NatsHarness, settings: OrdersSettings, tmp_path: Path
) -> None:
    server, own = nats.own_server(tmp_path)
    seen, handle = recorder()
    options = settings.consumer.model_copy(update={"block_ms": 50})
    consumer = own.consumer(STREAM, {TYPE: handle}, options, "c1")
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await asyncio.sleep(1.0)  # NATS is not there yet
        server.start()
        await own.publish(STREAM, event())
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
        while not seen:
            assert time.monotonic() < deadline, "the consumer never consumed"
            assert not task.done(), "the consumer stopped by itself"
            await asyncio.sleep(0.1)
        assert [e.id for e in seen] == ["evt-1"]
    finally:
        stop.set()
        await task
        await own.close()
        server.stop()


async def test_dead_letters_are_listed_past_the_replayed_ones(
    nats: NatsHarness, settings: OrdersSettings
) -> None:
    async def reject(_: CloudEvent) -> None:
        raise ConflictError("no")

    options = settings.consumer.model_copy(update={"block_ms": 50})
    consumer = nats.consumer(STREAM, {TYPE: reject}, options, "c1")
    await consumer.ensure_groups()
    await nats.publish(STREAM, event("evt-1"), event("evt-2"), event("evt-3"))
    await run_until([consumer], finished(nats))
    letters = nats.dead_letters()
    first, second, third = await letters.entries(STREAM)
    assert await letters.replay(STREAM, second["entry_id"]) is not None
    assert [letter["id"] for letter in await letters.entries(STREAM)] == ["evt-1", "evt-3"]
    assert [letter["id"] for letter in await letters.entries(STREAM, count=1)] == ["evt-1"]
    assert await letters.entry(STREAM, second["entry_id"]) is None
    assert (first["id"], third["id"]) == ("evt-1", "evt-3")


async def test_a_redelivery_reported_with_a_lower_delivery_count_keeps_its_attempt_number(
    nats: NatsHarness, settings: OrdersSettings
) -> None:
    """NATS has reported a message's third delivery as its first (on a loaded machine); taken
    at its word, the consumer would retry after the first backoff instead of the third."""

    async def fail(_: CloudEvent) -> None:
        raise RuntimeError("downstream is broken")

    options = settings.consumer.model_copy(update={"block_ms": 50, "retry_base_seconds": 30})
    consumer = nats.consumer(STREAM, {TYPE: fail}, options, "c1")
    await consumer.ensure_groups()
    await nats.publish(STREAM, event())
    client = await nats_client(nats)
    try:
        subscription = await client.jetstream().pull_subscribe_bind(GROUP, stream_for(STREAM))
        [first] = await subscription.fetch(1, timeout=10)
        again = copy.copy(first)  # the next delivery, reported with the first one's count
        assert (first.metadata.num_delivered, again.metadata.num_delivered) == (1, 1)
        assert isinstance(consumer, JetStreamConsumer)
        with capture_logs() as logs:
            await consumer.handle(STREAM, first)
            await consumer.handle(STREAM, again)
    finally:
        await client.close()
    failed = [line["attempt"] for line in logs if line["event"] == "consumer.message_failed"]
    assert failed == [1, 2]


async def nats_client(harness: NatsHarness) -> Client:
    return await connect(harness.url, connect_timeout=2)


async def test_a_nats_outage_mid_consume_is_waited_out(
    nats: NatsHarness, settings: OrdersSettings, tmp_path: Path
) -> None:
    server, own = nats.own_server(tmp_path)  # its store outlives the restart
    server.start()
    seen, handle = recorder()
    consumer = own.consumer(STREAM, {TYPE: handle}, settings.consumer, "c1")
    later = NatsHarness(settings, server.url)  # a publisher that connects after the outage
    stopped = False

    async def outage_then_an_event() -> bool:
        """Once the consumer has handled one, NATS stops (its connection breaks) and starts
        again, and one more event comes."""
        nonlocal stopped
        if seen and not stopped:
            server.stop()
            stopped = True
            server.start()
            await later.publish(STREAM, event("evt-2"))
        return "evt-2" in {e.id for e in seen}

    try:
        await consumer.ensure_groups()
        await own.publish(STREAM, event("evt-1"))
        await run_until([consumer], outage_then_an_event)
        # evt-1 may come again: its ack can go down with the server (handlers' inboxes apply
        # it once); nothing is lost or reordered.
        assert list(dict.fromkeys(e.id for e in seen)) == ["evt-1", "evt-2"]
    finally:
        await later.close()
        await own.close()
        server.stop()
