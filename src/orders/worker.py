"""The outbox publisher process (`orders publish`): delivers committed events to the broker
`ORDERS_BROKER__KIND` names (Redis Streams or NATS JetStream)."""

import asyncio
import contextlib

import structlog
from prometheus_client import CollectorRegistry

from core.brokers import build_broker
from core.database import build_engine
from core.idempotency import purge_periodically
from core.metrics import OutboxMetrics
from core.outbox.publisher import OutboxPublisher
from core.outbox.writer import NOTIFY_CHANNEL
from core.process import listen_for_wakeups, serve_metrics, stop_on_signals
from core.tracing import configure_tracing
from orders.settings import OrdersSettings

log = structlog.get_logger(__name__)


async def run_publisher(settings: OrdersSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    registry = CollectorRegistry()
    configure_tracing(settings)
    engine = build_engine(settings.database)
    broker = build_broker(settings)
    publisher = OutboxPublisher(engine, broker, settings.outbox, OutboxMetrics(registry))
    listener = None
    if settings.events.notify:
        listener = asyncio.create_task(
            listen_for_wakeups(settings.database, NOTIFY_CHANNEL, publisher.wake, stop)
        )
    # Expired Idempotency-Keys go too: the publisher is the service's background worker.
    purger = asyncio.create_task(
        purge_periodically(engine, settings.idempotency.purge_interval_seconds, stop)
    )
    log.info(
        "outbox.publisher_started",
        batch_size=settings.outbox.batch_size,
        broker=settings.broker.kind,
    )
    try:
        with (
            stop_on_signals(stop),
            serve_metrics(registry, settings.server.host, settings.outbox.metrics_port),
        ):
            await publisher.run(stop)
    finally:
        stop.set()
        await purger
        if listener is not None:
            with contextlib.suppress(Exception):  # a hint only: never in the way of cleanup
                await listener
        await broker.close()
        await engine.dispose()
