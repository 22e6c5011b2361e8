"""The inbox's retention: rows of applied events are kept as long as a copy may still arrive,
then purged by the consumer process in small batches (short transactions, little bloat)."""

import asyncio
import contextlib

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger(__name__)

PURGE_BATCH = 1000
PURGE_INTERVAL_SECONDS = 60.0

# On the database's clock, like every other age the service judges.
_PURGE = text("""
DELETE FROM inbox_events
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM inbox_events
    WHERE consumer = :consumer
      AND processed_at < now() - make_interval(secs => :retention)
    LIMIT :batch
))
""")


async def purge_inbox(engine: AsyncEngine, consumer: str, retention_seconds: float) -> int:
    """Delete the consumer's rows older than the retention; how many went."""
    purged = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(
                _PURGE,
                {"consumer": consumer, "retention": retention_seconds, "batch": PURGE_BATCH},
            )
        purged += result.rowcount
        if result.rowcount < PURGE_BATCH:
            return purged


async def purge_inbox_until(
    engine: AsyncEngine, consumer: str, retention_seconds: float, stop: asyncio.Event
) -> None:
    """Purge now and every minute until `stop` is set; an outage only delays a purge."""
    while not stop.is_set():
        try:
            purged = await purge_inbox(engine, consumer, retention_seconds)
            if purged:
                log.info("consumer.inbox_purged", consumer=consumer, rows=purged)
        except (SQLAlchemyError, OSError) as error:
            log.warning("consumer.inbox_purge_failed", error=str(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PURGE_INTERVAL_SECONDS)
