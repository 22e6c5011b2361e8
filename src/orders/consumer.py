"""The consumer process (`orders consume`): applies other services' events to orders."""

import asyncio
import os
import socket

import structlog
from prometheus_client import CollectorRegistry

from core.brokers import open_consumer
from core.database import build_engine, build_session_factory
from core.metrics import ConsumerMetrics
from core.outbox.writer import OutboxWriter
from core.process import serve_metrics, stop_on_signals
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
    outbox = OutboxWriter(order_events(settings.events.type_prefix), settings.events)
    handlers = PaymentHandlers(build_session_factory(engine), outbox, settings.consumer.group)
    streams = [settings.payments_stream]
    try:
        async with open_consumer(
            settings,
            streams,
            handlers.by_type(),
            ConsumerMetrics(registry),
            name=f"{socket.gethostname()}-{os.getpid()}",
        ) as consumer:
            log.info(
                "consumer.started",
                consumer=consumer.name,
                streams=streams,
                broker=settings.broker.kind,
            )
            with (
                stop_on_signals(stop),
                serve_metrics(registry, settings.server.host, settings.consumer.metrics_port),
            ):
                await consumer.run(stop)
    finally:
        await engine.dispose()
