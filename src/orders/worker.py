"""The outbox publisher process (`orders publish`): delivers committed events to Redis Streams."""

import asyncio
import contextlib

import structlog
from prometheus_client import CollectorRegistry

from core.database import build_engine
from core.idempotency import purge_periodically
from core.metrics import OutboxMetrics
from core.outbox.broker import RedisStreamsBroker
from core.outbox.publisher import OutboxPublisher
from core.outbox.writer import NOTIFY_CHANNEL
from core.process import listen_for_wakeups, serve_metrics, stop_on_signals
from core.resources import build_redis
from core.tracing import configure_tracing
from orders.settings import OrdersSettings

log = structlog.get_logger(__name__)


async def run_publisher(settings: OrdersSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    registry = CollectorRegistry()
    configure_tracing(settings)
    engine = build_engine(settings.database)
    redis = build_redis(settings.redis)
    broker = RedisStreamsBroker(
        redis,
        maxlen=settings.outbox.stream_maxlen,
        timeout_seconds=settings.outbox.publish_timeout_seconds,
    )
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
    log.info("outbox.publisher_started", batch_size=settings.outbox.batch_size)
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
