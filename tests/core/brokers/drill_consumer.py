"""A consumer process for the drills (`python -m tests.core.brokers.drill_consumer`): applies
the payments stream to `drill_effects`, each effect in one transaction with its inbox row,
until SIGTERM, once its stdin says go; a drill may also kill it. It imports only what it
needs, so it starts fast."""

import asyncio
import os
import sys

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from core.brokers import open_consumer
from core.database import build_engine, build_session_factory
from core.events import CloudEvent
from core.metrics import ConsumerMetrics
from core.outbox.writer import OutboxWriter
from core.process import stop_on_signals
from core.unit_of_work import InboxEntry, UnitOfWork
from orders.events import published_events
from orders.settings import OrdersSettings
from tests.core.brokers.conftest import GROUP, STREAM, TYPE

CREATE = """CREATE TABLE drill_effects (
    applied bigserial PRIMARY KEY, event_id text NOT NULL, key text NOT NULL,
    sequence int NOT NULL, consumer text NOT NULL)"""
INSERT = """INSERT INTO drill_effects (event_id, key, sequence, consumer)
    VALUES (:id, :key, :sequence, :consumer)"""


async def main() -> None:
    settings = OrdersSettings()
    name = f"drill-{os.getpid()}"
    engine = build_engine(settings.database)
    sessions = build_session_factory(engine)
    outbox = OutboxWriter(published_events("orders"), settings.events)
    handler_seconds = float(os.environ["DRILL_HANDLER_SECONDS"])

    async def apply(event: CloudEvent) -> None:
        async with UnitOfWork(sessions, outbox, InboxEntry(GROUP, event.source, event.id)) as uow:
            values = {"id": event.id, "key": event.partitionkey, "consumer": name}
            await uow.session.execute(text(INSERT), values | {"sequence": int(event.sequence)})
            await asyncio.sleep(handler_seconds)  # the effect is in flight, not yet committed
            await uow.commit()

    metrics = ConsumerMetrics(CollectorRegistry())
    stop = asyncio.Event()
    try:
        async with open_consumer(settings, [STREAM], {TYPE: apply}, metrics, name=name) as consumer:
            with stop_on_signals(stop):
                # The drill lets each consumer start consuming when it chooses to.
                print("drill.consumer_ready", flush=True)  # noqa: T201 - the drill reads it
                await asyncio.to_thread(sys.stdin.readline)
                await consumer.run(stop)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
