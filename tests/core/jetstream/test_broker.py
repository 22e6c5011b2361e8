"""What only the JetStream publisher adapter does: its binding and broker-side deduplication."""

import pytest
from pydantic import SecretStr

from core.jetstream import JetStream
from core.jetstream.broker import JetStreamBroker
from core.outbox.broker import BrokerUnavailableError, PermanentPublishError
from tests.brokers import NatsHarness
from tests.core.brokers.conftest import event
from tests.support import free_port


async def test_a_batch_published_again_is_stored_once(nats: NatsHarness) -> None:
    broker = nats.adapter()
    batch = [("payments", event("evt-1")), ("payments", event("evt-2"))]
    assert await broker.publish(batch) == [None, None]
    # A publisher that died before deleting its rows sends the batch again after restarting.
    assert await broker.publish(batch) == [None, None]
    assert [entry["id"] for entry in await nats.read("payments")] == ["evt-1", "evt-2"]


async def test_attributes_travel_as_ce_headers_and_the_event_id_as_the_message_id(
    nats: NatsHarness,
) -> None:
    await nats.adapter().publish([("payments", event("evt-1"))])
    message = await nats.raw("payments", 1)
    headers = message.headers or {}
    assert headers["Nats-Msg-Id"] == "evt-1"
    assert headers["Content-Type"] == "application/json"
    assert (headers["ce-id"], headers["ce-specversion"]) == ("evt-1", "1.0")
    assert headers["ce-type"] == "payments.payment.succeeded.v1"
    assert message.data == b'{"n":1}'


async def test_an_unreachable_server_is_an_outage_not_the_events_fault(
    nats: NatsHarness,
) -> None:
    settings = nats.settings.broker.model_copy(
        update={"nats_url": SecretStr(f"nats://127.0.0.1:{free_port()}")}
    )
    broker = JetStreamBroker(JetStream(settings, timeout_seconds=1), timeout_seconds=1)
    with pytest.raises(BrokerUnavailableError):
        await broker.publish([("payments", event())])
    await broker.close()


async def test_an_event_too_large_for_the_server_is_refused_for_good(nats: NatsHarness) -> None:
    huge = event("evt-1", blob="x" * 1_100_000)  # past the server's 1 MiB max_payload
    [result] = await nats.adapter().publish([("payments", huge)])
    assert isinstance(result, PermanentPublishError)


async def test_an_event_too_large_for_its_stream_is_refused_for_good(nats: NatsHarness) -> None:
    await nats.refuse("payments")  # the stream stores messages of one byte at most
    [result] = await nats.adapter().publish([("payments", event("evt-1"))])
    assert isinstance(result, PermanentPublishError), result


async def test_a_stream_removed_under_a_running_publisher_is_created_again(
    nats: NatsHarness,
) -> None:
    broker = nats.adapter()
    assert await broker.publish([("payments", event("evt-1"))]) == [None]
    await nats.remove("payments")
    with pytest.raises(BrokerUnavailableError):  # no stream answers: the event stays put
        await broker.publish([("payments", event("evt-2"))])
    assert await broker.publish([("payments", event("evt-2"))]) == [None]  # the next batch
    assert [entry["id"] for entry in await nats.read("payments")] == ["evt-2"]
    await broker.close()
