"""The consumer process: besides consuming, it purges the inbox rows past their retention."""

import asyncio
import time

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.outbox.tables import InboxEvent
from orders.consumer import run_consumer
from orders.settings import OrdersSettings


async def test_the_consumer_process_purges_inbox_rows_past_their_retention(
    engine: AsyncEngine, database: OrdersSettings
) -> None:
    group = database.consumer.group
    async with engine.begin() as connection:
        rows = [
            {"consumer": group, "source": "/s", "event_id": "old"},
            {"consumer": group, "source": "/s", "event_id": "recent"},
            {"consumer": "another-service", "source": "/s", "event_id": "old-elsewhere"},
        ]
        await connection.execute(insert(InboxEvent), rows)
        await connection.execute(
            text(
                "UPDATE inbox_events SET processed_at = now() - interval '8 days' "
                "WHERE event_id LIKE 'old%'"
            )
        )
    consumer = database.consumer.model_copy(update={"inbox_retention_seconds": 7 * 24 * 3600})
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_consumer(database.model_copy(update={"consumer": consumer}), stop)
    )
    try:
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
        while True:
            async with engine.connect() as connection:
                left = set(await connection.scalars(select(InboxEvent.event_id)))
            if "old" not in left:
                break
            assert not task.done(), task
            assert time.monotonic() < deadline, "the old inbox row was never purged"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
    # Another group's rows are its own consumer's to purge.
    assert left == {"recent", "old-elsewhere"}
