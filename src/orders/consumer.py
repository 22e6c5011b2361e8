"""The consumer process (`orders consume`): applies other services' events to orders."""

import asyncio
import os
import socket

import structlog
from prometheus_client import CollectorRegistry

from core.consumer import StreamConsumer
from core.database import build_engine, build_session_factory
from core.metrics import ConsumerMetrics
from core.outbox.writer import OutboxWriter
from core.process import serve_metrics, stop_on_signals
from core.resources import build_redis
from core.tracing import configure_tracing
from orders.consumers.payments import PaymentHandlers
from orders.events import order_events
from orders.settings import OrdersSettings

log = structlog.get_logger(__name__)


async def run_consumer(settings: OrdersSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    registry = CollectorRegistry()
    configure_tracing(settings)
    engine = build_engine(settings.database)
    redis = build_redis(settings.redis, blocking_ms=settings.consumer.block_ms)
    outbox = OutboxWriter(order_events(settings.events.type_prefix), settings.events)
    handlers = PaymentHandlers(build_session_factory(engine), outbox, settings.consumer.group)
    consumer = StreamConsumer(
        redis,
        [settings.payments_stream],
        handlers.by_type(),
        settings.consumer,
        ConsumerMetrics(registry),
        name=f"{socket.gethostname()}-{os.getpid()}",
    )
    log.info("consumer.started", consumer=consumer.name, streams=[settings.payments_stream])
    try:
        with (
            stop_on_signals(stop),
            serve_metrics(registry, settings.server.host, settings.consumer.metrics_port),
        ):
            await consumer.run(stop)
    finally:
        await redis.aclose()
        await engine.dispose()
