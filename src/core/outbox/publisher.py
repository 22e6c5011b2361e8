"""The outbox publisher: claims rows, publishes them in per-aggregate order, deletes them.

One batch is one transaction. Keys (aggregates) are locked with transaction-scoped advisory
locks, so any number of publishers run side by side without reordering an aggregate's events.
A failing event puts a hold on its own aggregate (until its backoff ends, or for good when it
dies under the `block` policy); held aggregates are left out of the claim, so their later
events never crowd out anyone else's.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, groupby
from typing import Any

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy import Row, bindparam, delete, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.events import CloudEvent, encode_sequence, format_time
from core.metrics import OutboxMetrics
from core.outbox.broker import (
    BrokerFullError,
    BrokerUnavailableError,
    MessageBroker,
    PermanentPublishError,
    PublishError,
)
from core.outbox.claim import claim
from core.outbox.tables import OutboxEvent
from core.settings import OutboxSettings
from core.tracing import links_to, tracer

log = structlog.get_logger(__name__)

_GAUGES = text("""
SELECT (SELECT count(*) FROM outbox_events),
    (SELECT extract(epoch FROM now() - min(occurred_at)) FROM outbox_events),
    (SELECT count(*) FROM outbox_dead_events),
    (SELECT count(*) FROM outbox_key_holds WHERE until > now())
""")
# Outside the aggregates' locks, so it skips the holds a batch is setting: waiting for one while
# having deleted another that batch sets next would deadlock, and the batch (rolled back after
# publishing) would publish its events again.
_FORGET_EXPIRED_HOLDS = text("""
DELETE FROM outbox_key_holds WHERE (aggregate_type, aggregate_id) IN (
    SELECT aggregate_type, aggregate_id FROM outbox_key_holds WHERE until <= now()
    FOR UPDATE SKIP LOCKED
)
""")
GAUGE_INTERVAL_SECONDS = 5.0

_FAILED = text(
    "UPDATE outbox_events SET attempts = attempts + 1, last_error = :error WHERE id = :id"
)

# Until `infinity` for a dead event under the `block` policy: an operator lifts it. A backoff
# counts from now, not from the transaction's start (now()): a slow batch must not shorten it.
# The aggregate's rows move behind the hold, out of the claims' way.
_HOLD = text("""
WITH hold AS (
    INSERT INTO outbox_key_holds (aggregate_type, aggregate_id, until, reason)
    VALUES (:aggregate_type, :aggregate_id,
        CASE WHEN :forever THEN 'infinity'::timestamptz
        ELSE clock_timestamp() + make_interval(secs => :delay) END,
        :reason)
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
    SET until = excluded.until, reason = excluded.reason
    RETURNING aggregate_type, aggregate_id, until
)
UPDATE outbox_events o SET available_at = hold.until FROM hold
WHERE o.aggregate_type = hold.aggregate_type AND o.aggregate_id = hold.aggregate_id
""")

_BURY = text("""
WITH dead AS (DELETE FROM outbox_events WHERE id = :id RETURNING *)
INSERT INTO outbox_dead_events (id, event_id, source, type, subject, topic, aggregate_type,
    aggregate_id, aggregate_version, data, dataschema, traceparent, tracestate, occurred_at,
    attempts, last_error, dead_reason)
SELECT id, event_id, source, type, subject, topic, aggregate_type, aggregate_id,
    aggregate_version, data, dataschema, traceparent, tracestate, occurred_at,
    attempts + 1, :error, :reason
FROM dead
""")


@dataclass
class BatchOutcome:
    published: list[Row[Any]] = field(default_factory=list)
    failed: list[tuple[Row[Any], PublishError]] = field(default_factory=list)
    dead: int = 0
    broker_unavailable: BrokerUnavailableError | None = None


class OutboxPublisher:
    def __init__(
        self,
        engine: AsyncEngine,
        broker: MessageBroker,
        settings: OutboxSettings,
        metrics: OutboxMetrics,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._settings = settings
        self._metrics = metrics
        self.wake = asyncio.Event()

    async def publish_batch(self) -> int:
        """Publish one batch in one transaction; returns how many events the broker took."""
        async with self._engine.begin() as connection:
            started = time.perf_counter()
            rows = await claim(connection, self._settings)
            self._metrics.claim_seconds.observe(time.perf_counter() - started)
            if not rows:
                return 0
            outcome = await self._publish(_runs(rows))
            await self._settle(connection, outcome)
        self._record(outcome)
        if outcome.broker_unavailable is not None:
            raise outcome.broker_unavailable
        return len(outcome.published)

    async def _publish(self, runs: list[list[Row[Any]]]) -> BatchOutcome:
        """Round r sends the r-th event of every aggregate whose earlier ones all went out.

        One PRODUCER span per batch, linked to the trace of every request whose event it
        carries; the events keep their own `traceparent`, which consumers continue.
        """
        rows = [row for run in runs for row in run]
        carriers = [{"traceparent": r.traceparent, "tracestate": r.tracestate} for r in rows]
        topics = sorted({row.topic for row in rows})
        with tracer(__name__).start_as_current_span(
            f"publish {','.join(topics)}",
            kind=SpanKind.PRODUCER,
            links=links_to(carriers),
            attributes={
                "messaging.system": self._broker.system,
                "messaging.batch.message_count": len(rows),
            },
        ):
            return await self._publish_rounds(runs)

    async def _publish_rounds(self, runs: list[list[Row[Any]]]) -> BatchOutcome:
        outcome = BatchOutcome()
        depth = 0
        while runs:
            heads = [run[depth] for run in runs]
            try:
                results = await self._broker.publish([(row.topic, _event(row)) for row in heads])
            except BrokerUnavailableError as error:
                outcome.broker_unavailable = error
                outcome.published += compress(heads, error.taken)  # stored before it refused
                break
            still_going = []
            for run, row, failure in zip(runs, heads, results, strict=True):
                if failure is not None:
                    outcome.failed.append((row, failure))
                    continue
                outcome.published.append(row)
                if depth + 1 < len(run):
                    still_going.append(run)
            runs, depth = still_going, depth + 1
        return outcome

    async def _settle(self, connection: AsyncConnection, outcome: BatchOutcome) -> None:
        if outcome.published:
            ids = [row.id for row in outcome.published]
            await connection.execute(
                delete(OutboxEvent).where(OutboxEvent.id.in_(bindparam("ids", expanding=True))),
                {"ids": ids},
            )
        for row, error in outcome.failed:
            attempts = row.attempts + 1
            if isinstance(error, PermanentPublishError) or attempts >= self._settings.max_attempts:
                await self._bury(connection, row, error, attempts)
                outcome.dead += 1
                continue
            delay = self._backoff(attempts)
            await connection.execute(_FAILED, {"id": row.id, "error": str(error)})
            await connection.execute(_HOLD, _hold(row, str(error), delay=delay))
            log.warning(
                "outbox.publish_failed",
                event_id=str(row.event_id),
                type=row.type,
                aggregate_id=row.aggregate_id,
                attempt=attempts,
                retry_in=round(delay, 2),
                error=str(error),
            )

    async def _bury(
        self, connection: AsyncConnection, row: Row[Any], error: PublishError, attempts: int
    ) -> None:
        permanent = isinstance(error, PermanentPublishError)
        reason = "refused permanently" if permanent else f"gave up after {attempts} attempts"
        await connection.execute(_BURY, {"id": row.id, "error": str(error), "reason": reason})
        if self._settings.poison_policy == "block":
            hold = _hold(row, f"dead event {row.event_id}", forever=True)
            await connection.execute(_HOLD, hold)
        log.error(
            "outbox.event_dead",
            event_id=str(row.event_id),
            type=row.type,
            aggregate_id=row.aggregate_id,
            reason=reason,
            error=str(error),
        )

    def _backoff(self, attempts: int) -> float:
        base = self._settings.backoff_base_seconds * 2 ** (attempts - 1)
        jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreads retries, not security
        return float(min(base, self._settings.backoff_max_seconds) * jitter)

    def _record(self, outcome: BatchOutcome) -> None:
        metrics = self._metrics
        metrics.batch_size.observe(len(outcome.published) + len(outcome.failed))
        metrics.published.inc(len(outcome.published))
        for row in outcome.published:
            metrics.commit_to_publish.observe(float(row.age_seconds))
        metrics.failed.inc(len(outcome.failed))
        metrics.dead.inc(outcome.dead)
        if isinstance(outcome.broker_unavailable, BrokerFullError):
            metrics.broker_full.inc()

    async def refresh_gauges(self) -> None:
        """Set the backlog gauges, and forget holds whose backoff is over."""
        async with self._engine.begin() as connection:
            await connection.execute(_FORGET_EXPIRED_HOLDS)
            pending, oldest, dead, held = (await connection.execute(_GAUGES)).one()
        self._metrics.pending.set(pending)
        self._metrics.oldest_pending_age.set(float(oldest or 0))
        self._metrics.dead_events.set(dead)
        self._metrics.keys_held.set(held)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; the batch in flight always finishes first."""
        idle = self._settings.poll_min_seconds
        gauges_due = 0.0
        while not stop.is_set():
            if time.monotonic() >= gauges_due:
                gauges_due = time.monotonic() + GAUGE_INTERVAL_SECONDS
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self.refresh_gauges()
            self.wake.clear()  # before the query, so a wake-up during it is not lost
            try:
                published = await self.publish_batch()
            except BrokerUnavailableError as error:
                log.warning("outbox.broker_unavailable", error=str(error), retry_in=idle)
                published = 0
            except (SQLAlchemyError, OSError):
                log.exception("outbox.database_unavailable", retry_in=idle)
                published = 0
            if published:
                idle = self._settings.poll_min_seconds
                continue
            await _wait_any(stop, self.wake, idle)
            idle = min(idle * 2, self._settings.poll_max_seconds)
        log.info("outbox.publisher_stopped")


def _runs(rows: Sequence[Row[Any]]) -> list[list[Row[Any]]]:
    """The loaded rows grouped per aggregate, each group in version order."""
    return [
        list(group) for _, group in groupby(rows, key=lambda r: (r.aggregate_type, r.aggregate_id))
    ]


def _hold(
    row: Row[Any], reason: str, *, delay: float = 0.0, forever: bool = False
) -> dict[str, Any]:
    return {
        "aggregate_type": row.aggregate_type,
        "aggregate_id": row.aggregate_id,
        "forever": forever,
        "delay": delay,
        "reason": reason,
    }


def _event(row: Row[Any]) -> CloudEvent:
    return CloudEvent(
        id=str(row.event_id),
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=format_time(row.occurred_at),
        data=row.data,
        partitionkey=row.aggregate_id,
        sequence=encode_sequence(row.aggregate_version),
        dataschema=row.dataschema,
        traceparent=row.traceparent,
        tracestate=row.tracestate,
    )


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
