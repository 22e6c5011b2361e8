"""Redis Streams consumer: at-least-once delivery turned into an exactly-once effect.

- A consumer group per service; entries are acked only after success or dead-lettering.
- A processing lease in Redis (SET NX) keeps two consumers from running one event at once; a
  `done` marker answers duplicates. Handlers whose effect is in PostgreSQL also write an inbox
  row in the effect's transaction, which makes the effect happen once even past the marker's TTL.
- One entry at a time, in stream order: the batch read and the reclaimer's retries take turns.
- Each consumer holds its pending entries while it runs (core.holders): another claims them
  only once their holder is gone, never while it is still working through its batch.
- A failed entry stays pending; the reclaimer claims it again 1 s, 2 s, 4 s after the failure
  (Redis's own idle clock, with jitter), and after the last retry moves it to
  `<stream>:dead-letter`, atomically with its ack. Attempts are handler runs, counted in a Redis
  hash: a claim that finds the event running elsewhere costs none. Undecodable entries are
  dead-lettered at once.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from core.events import CloudEvent
from core.handling import Handler, Outcome, PermanentError, Verdict, apply, record_finished
from core.holders import Holders, Lease
from core.metrics import ConsumerMetrics
from core.settings import ConsumerSettings

log = structlog.get_logger(__name__)
__all__ = ["Delivery", "Handler", "PermanentError", "StreamConsumer", "dead_letter_stream"]

_Entries = list[tuple[bytes, dict[bytes, bytes] | None]]  # None: trimmed
_ReadReply = list[tuple[bytes, _Entries]] | None
DEAD_LETTER_SUFFIX = ":dead-letter"
RECLAIM_INTERVAL_SECONDS = 0.25
LEASE_MARGIN_SECONDS = 5.0
GAUGE_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Delivery:
    stream: str
    entry_id: str
    fields: Mapping[bytes, bytes] | None  # None when the entry was trimmed or deleted


def dead_letter_stream(stream: str) -> str:
    return stream + DEAD_LETTER_SUFFIX


class StreamConsumer:
    def __init__(
        self,
        redis: Redis,
        streams: Sequence[str],
        handlers: Mapping[str, Handler],
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        *,
        name: str,
    ) -> None:
        self._redis = redis
        self._streams = list(streams)
        self._handlers = handlers
        self._settings = settings
        self.metrics = metrics
        self.name = name
        self.group = settings.group
        # The processing lease outlives the handler (which times out first).
        processing = settings.handler_timeout_seconds + LEASE_MARGIN_SECONDS
        self._holders = Holders(redis, self.group, name, processing)
        self._turn = asyncio.Lock()  # one entry at a time, whichever loop found it
        self._in_hand: set[tuple[str, str]] = set()  # read, not yet handled: never reclaimed

    async def ensure_groups(self) -> None:
        """Create the group from the stream's start: nothing retained is skipped."""
        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the entry in hand is always finished first.

        The groups are created at the start, through an outage, and again when they went
        away: a stream deleted, or a Redis restarted without its data."""
        helpers: list[asyncio.Task[None]] = []
        groups_missing = True
        try:
            while not stop.is_set():
                try:
                    if groups_missing:
                        await self.ensure_groups()
                        groups_missing = False
                    if not helpers:  # once there are groups to reclaim from
                        helpers = [
                            asyncio.create_task(self._reclaim_until(stop)),
                            asyncio.create_task(self._holders.renew_until(stop)),
                        ]
                    await self.read_once(stop)
                except RedisError as error:
                    if "NOGROUP" in str(error):
                        groups_missing = True
                        log.warning("consumer.group_missing", error=str(error))
                    else:
                        log.warning("consumer.redis_unavailable", error=str(error))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            stop.set()
            await asyncio.gather(*helpers)
        log.info("consumer.stopped", consumer=self.name)

    async def read_once(self, stop: asyncio.Event | None = None) -> int:
        """Read and handle new entries; returns how many were handled."""
        await self._holders.renew()  # before taking entries: they are held from the start
        response: _ReadReply = await self._redis.xreadgroup(  # type: ignore[assignment]
            self.group,
            self.name,
            dict.fromkeys(self._streams, ">"),
            count=self._settings.batch_size,
            block=self._settings.block_ms,
        )
        batch = [
            Delivery(stream.decode(), entry_id.decode(), fields)
            for stream, entries in response or []
            for entry_id, fields in entries
        ]
        self._in_hand.update((delivery.stream, delivery.entry_id) for delivery in batch)
        handled = 0
        try:
            for delivery in batch:
                if stop is not None and stop.is_set():
                    break  # the rest stay pending, for the others once this one has stopped
                async with self._turn:
                    await self.handle(delivery)
                self._in_hand.discard((delivery.stream, delivery.entry_id))
                handled += 1
        finally:
            self._in_hand.difference_update((d.stream, d.entry_id) for d in batch)
        return handled

    async def reclaim_once(self, stop: asyncio.Event | None = None) -> int:
        """Claim the entries whose backoff has passed: failed ones, and a dead consumer's.
        Once `stop` is set, nothing more is claimed: the rest wait for the next consumer."""
        claimed = 0
        base_ms = self._settings.retry_base_seconds * 1000
        for stream in self._streams:
            pending: list[dict[str, Any]] = await self._redis.xpending_range(
                stream, self.group, min="-", max="+", count=100, idle=int(base_ms * 0.8)
            )
            if not pending:
                continue
            pending = await self._reclaimable(stream, pending)
            if not pending:
                continue
            runs = await self._redis.hmget(
                self._attempts_key(stream), [entry["message_id"] for entry in pending]
            )
            for entry, ran in zip(pending, runs, strict=True):
                if stop is not None and stop.is_set():
                    return claimed
                # Backoff by handler runs, not by deliveries: a claim that found the event
                # running elsewhere is no attempt.
                done = int(ran or 0)
                jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreads retries only
                wait_ms = int(base_ms * 2 ** max(done - 1, 0) * jitter)
                if entry["time_since_delivered"] < wait_ms:
                    continue
                result: _Entries = await self._redis.xclaim(  # type: ignore[assignment]
                    stream,
                    self.group,
                    self.name,
                    min_idle_time=wait_ms,
                    message_ids=[entry["message_id"]],
                )
                entry_id = entry["message_id"].decode()
                if not result and not await self._redis.xrange(stream, entry_id, entry_id):
                    # Trimmed while pending: Redis drops it from the group without a word.
                    result = [(entry["message_id"], None)]
                for _, fields in result:
                    async with self._turn:
                        await self.handle(Delivery(stream, entry_id, fields))
                    claimed += 1
        return claimed

    async def _reclaimable(
        self, stream: str, pending: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Its own entries not in hand (they failed), and those of consumers that are gone."""
        held = await self._holders.alive(entry["consumer"].decode() for entry in pending)
        return [
            entry
            for entry in pending
            if entry["consumer"].decode() not in held
            and (stream, entry["message_id"].decode()) not in self._in_hand
        ]

    async def refresh_gauges(self) -> None:
        for stream in self._streams:
            length = await self._redis.xlen(dead_letter_stream(stream))
            self.metrics.dead_letters.labels(stream).set(length)

    async def _reclaim_until(self, stop: asyncio.Event) -> None:
        # Check often enough that the shortest backoff is kept to within a fifth of itself.
        interval = min(RECLAIM_INTERVAL_SECONDS, self._settings.retry_base_seconds / 5)
        gauges_due = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= gauges_due:
                    gauges_due = time.monotonic() + GAUGE_INTERVAL_SECONDS
                    await self.refresh_gauges()
                await self.reclaim_once(stop)
            except Exception:  # the reclaimer must outlive any one bad entry or outage
                log.exception("consumer.reclaim_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def handle(self, delivery: Delivery) -> None:
        if not delivery.fields:  # trimmed or deleted while pending
            await self._dead_letter(delivery, "entry no longer exists")
            return
        try:
            event = CloudEvent.from_fields(_decode(delivery.fields))
        except (UnicodeDecodeError, ValueError) as error:
            await self._dead_letter(delivery, f"undecodable: {error}")
            return
        handler = self._handlers.get(event.type)
        if handler is None:  # a type, or a version, this service has not learnt yet
            await self._dead_letter(delivery, f"no handler for type {event.type}")
            return
        if not await self._lease(delivery, event):
            return
        attempt = await self._redis.hincrby(self._attempts_key(delivery.stream), delivery.entry_id)
        if attempt > self._settings.max_retries + 1:  # its consumer died during the last try
            await self._redis.delete(self._lease_key(event))
            await self._dead_letter(delivery, "attempts exhausted", attempts=attempt - 1)
            return
        outcome = await apply(
            handler,
            event,
            stream=delivery.stream,
            attempt=attempt,
            last_attempt=attempt > self._settings.max_retries,
            system="redis",
            timeout_seconds=self._settings.handler_timeout_seconds,
            metrics=self.metrics,
        )
        await self._settle(delivery, event, outcome, attempt)

    async def _settle(
        self, delivery: Delivery, event: CloudEvent, outcome: Outcome, attempt: int
    ) -> None:
        if outcome.verdict in {Verdict.DONE, Verdict.DUPLICATE}:
            await self._finish(delivery, event, outcome.verdict.value)
            return
        await self._redis.delete(self._lease_key(event))
        if outcome.verdict is Verdict.REJECTED:
            await self._dead_letter(delivery, f"rejected: {outcome.error}", attempts=attempt)
            return
        if attempt > self._settings.max_retries:
            await self._dead_letter(delivery, f"failed: {outcome.error!r}", attempts=attempt)
            return
        # The backoff is read off the entry's idle time: restart it, so it counts from this
        # failure rather than from the delivery (JUSTID leaves the delivery count alone).
        await self._redis.xclaim(
            delivery.stream,
            self.group,
            self.name,
            min_idle_time=0,
            message_ids=[delivery.entry_id],
            justid=True,
        )
        self.metrics.messages.labels(delivery.stream, "retry").inc()

    def _lease_key(self, event: CloudEvent) -> str:
        return f"dedup:{self.group}:{event.source}:{event.id}"

    def _attempts_key(self, stream: str) -> str:
        return f"attempts:{self.group}:{stream}"

    async def _lease(self, delivery: Delivery, event: CloudEvent) -> bool:
        """Take the processing lease; False when the event is done or running elsewhere."""
        match await self._holders.take(self._lease_key(event)):
            case Lease.TAKEN:
                return True
            case Lease.DONE:
                await self._ack(delivery, "duplicate")
            case Lease.BUSY:
                self.metrics.messages.labels(delivery.stream, "in_progress_elsewhere").inc()
        return False

    async def _finish(self, delivery: Delivery, event: CloudEvent, result: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.set(self._lease_key(event), "done", ex=self._settings.dedup_ttl_seconds)
            pipeline.xack(delivery.stream, self.group, delivery.entry_id)
            pipeline.hdel(self._attempts_key(delivery.stream), delivery.entry_id)
            await pipeline.execute()
        record_finished(self.metrics, delivery.stream, event, result)

    async def _ack(self, delivery: Delivery, result: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.xack(delivery.stream, self.group, delivery.entry_id)
            pipeline.hdel(self._attempts_key(delivery.stream), delivery.entry_id)
            await pipeline.execute()
        self.metrics.messages.labels(delivery.stream, result).inc()

    async def _dead_letter(self, delivery: Delivery, reason: str, attempts: int = 0) -> None:
        """Move the entry, byte for byte, to the dead-letter stream, atomically with its ack."""
        fields: dict[Any, Any] = {
            **(delivery.fields or {}),
            "dlq_reason": reason,
            "dlq_attempts": attempts,
            "dlq_stream": delivery.stream,
            "dlq_entry_id": delivery.entry_id,
            "dlq_group": self.group,
        }
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.xadd(dead_letter_stream(delivery.stream), fields)
            pipeline.xack(delivery.stream, self.group, delivery.entry_id)
            pipeline.hdel(self._attempts_key(delivery.stream), delivery.entry_id)
            await pipeline.execute()
        self.metrics.messages.labels(delivery.stream, "dead_letter").inc()
        log.error(
            "consumer.message_dead_lettered",
            stream=delivery.stream,
            entry_id=delivery.entry_id,
            reason=reason,
            attempts=attempts,
        )


def _decode(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in fields.items()}
