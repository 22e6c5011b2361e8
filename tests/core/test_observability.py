"""One order followed by one id through logs and traces: request, database, outbox, broker,
and the consumer of the payment it led to."""

import json
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_session_factory
from core.events import CloudEvent
from core.outbox.writer import OutboxWriter
from core.tracing import configure_tracing
from orders.consumers.payments import PaymentHandlers
from orders.main import create_app
from orders.settings import SERVICE, OrdersSettings
from tests.brokers import BrokerHarness
from tests.conftest import NewPublisher
from tests.orders.payloads import order_payload
from tests.support import serve_in_process

BASE_FIELDS = {
    "timestamp", "level", "event", "logger", "module", "function", "line",
    "service", "version", "environment",
}  # fmt: skip


@pytest.fixture
def spans(settings: OrdersSettings) -> Iterator[InMemorySpanExporter]:
    provider = configure_tracing(settings)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[attr-defined]
    yield exporter
    exporter.shutdown()


async def follow_one_order(
    broker: BrokerHarness,
    engine: AsyncEngine,
    new_publisher: NewPublisher,
    outbox: OutboxWriter,
) -> tuple[str, str]:
    """Place an order over HTTP, publish its event, pay for it, consume the payment."""
    async with serve_in_process(create_app(broker.settings)) as client:
        response = await client.post("/v1/orders", json=order_payload())
    await new_publisher(broker.adapter()).publish_batch()
    [placed] = await broker.read("orders")
    payment = CloudEvent(  # the payments service continues the trace it was handed
        id="payment-1",
        source="/services/payments",
        type="payments.payment.succeeded.v1",
        subject="payment/1",
        time="2026-11-21T10:00:00Z",
        data={
            "payment_id": "0190f6c4-0000-7000-8000-000000000001",
            "order_id": response.json()["id"],
            "amount": "44.98",
            "currency": "EUR",
        },
        partitionkey="1",
        sequence="00000000000000000001",
        traceparent=placed["traceparent"],
    )
    await broker.publish("payments", payment)
    handlers = PaymentHandlers(build_session_factory(engine), outbox, "orders")
    options = broker.settings.consumer.model_copy(update={"block_ms": 50})
    consumer = broker.consumer("payments", handlers.by_type(), options, "c1")
    await consumer.ensure_groups()
    # One read may come back empty on a loaded machine (a 50 ms block): read until it is handled.
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed goal
    while not await consumer.read_once():
        assert time.monotonic() < deadline, "the payment was never handled"
    return response.headers["x-request-id"], placed["traceparent"].split("-")[1]


async def test_logs_of_request_and_consumer_share_the_trace(
    broker: BrokerHarness,
    engine: AsyncEngine,
    new_publisher: NewPublisher,
    outbox: OutboxWriter,
    spans: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    request_id, trace_id = await follow_one_order(broker, engine, new_publisher, outbox)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert lines, "nothing was logged"
    for line in lines:
        assert set(line) >= BASE_FIELDS, line
        assert line["service"] == SERVICE
    request_lines = [line for line in lines if line.get("request_id") == request_id]
    assert {line["event"] for line in request_lines} >= {"order.placed", "http.request"}
    assert {line["trace_id"] for line in request_lines} == {trace_id}
    access = next(line for line in request_lines if line["event"] == "http.request")
    assert (access["route"], access["status"], access["method"]) == ("/v1/orders", 201, "POST")
    consumer_lines = [line for line in lines if line["event"] == "consumer.message_processed"]
    assert [line["trace_id"] for line in consumer_lines] == [trace_id]
    confirmed = next(line for line in lines if line["event"] == "order.confirmed")
    assert confirmed["trace_id"] == trace_id


async def test_one_trace_holds_the_request_the_database_and_the_consumer(
    broker: BrokerHarness,
    engine: AsyncEngine,
    new_publisher: NewPublisher,
    outbox: OutboxWriter,
    spans: InMemorySpanExporter,
) -> None:
    _, trace_id = await follow_one_order(broker, engine, new_publisher, outbox)
    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    in_trace = [s for s in finished if format(s.context.trace_id, "032x") == trace_id]
    kinds = {(s.kind, s.name) for s in in_trace}
    assert (SpanKind.SERVER, "POST /v1/orders") in kinds
    assert (SpanKind.CONSUMER, "process payments") in kinds
    database_spans = [s for s in in_trace if (s.attributes or {}).get("db.system") == "postgresql"]
    assert database_spans, "no database span in the request's trace"
    # The publisher sends many requests' events in one batch: its span links to each trace.
    [publish] = [s for s in finished if s.kind is SpanKind.PRODUCER]
    assert publish.name == "publish orders"
    assert (publish.attributes or {})["messaging.system"] == broker.kind
    assert [format(link.context.trace_id, "032x") for link in publish.links] == [trace_id]
