"""The consumer process (`orders consume`): applies other services' events to this one."""

import asyncio
import os
import socket

import structlog
from prometheus_client import CollectorRegistry

from core.brokers import open_consumer
from core.database import build_engine, build_session_factory
from core.inbox import purge_inbox_until
from core.metrics import ConsumerMetrics
from core.outbox.writer import OutboxWriter
from core.process import serve_metrics, stop_on_signals
from core.tracing import configure_tracing
from orders.consumers import consumed_streams, event_handlers
from orders.events import published_events
from orders.settings import OrdersSettings

log = structlog.get_logger(__name__)


async def run_consumer(settings: OrdersSettings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    registry = CollectorRegistry()
    streams = consumed_streams(settings)
    serving = serve_metrics(registry, settings.server.host, settings.consumer.metrics_port)
    if not streams:
        # Nothing to read yet: the process stays up (its Deployment and health with it) until
        # a handler and its stream are added in orders/consumers/.
        log.info("consumer.idle", reason="no consumed streams")
        with stop_on_signals(stop), serving:
            await stop.wait()
        return
    configure_tracing(settings)
    engine = build_engine(settings.database)
    outbox = OutboxWriter(published_events(settings.events.type_prefix), settings.events)
    handlers = event_handlers(build_session_factory(engine), outbox, settings.consumer.group)
    try:
        async with open_consumer(
            settings,
            streams,
            handlers,
            ConsumerMetrics(registry),
            name=f"{socket.gethostname()}-{os.getpid()}",
        ) as consumer:
            log.info(
                "consumer.started",
                consumer=consumer.name,
                streams=streams,
                broker=settings.broker.kind,
            )
            with stop_on_signals(stop), serving:
                retention = settings.consumer.inbox_retention_seconds
                await asyncio.gather(
                    consumer.run(stop),
                    purge_inbox_until(engine, settings.consumer.group, retention, stop),
                )
    finally:
        await engine.dispose()
