"""NATS JetStream consumer: the handler contract of `core.handling`, done JetStream's way.

- One durable pull consumer per group and stream, shared by every process of the group; a
  message is acked only after success or dead-lettering.
- Retries: a failed message is NAKed with a delay of about 1 s, 2 s, 4 s (jittered); the
  server's delivery count is the attempt number (never lower than the last one handled here:
  NATS 2.9 has reported a third delivery as the first) and `MaxDeliver` = 1 + retries bounds it.
- Dead letters go to the subject `<topic>.dead-letter` (a stream of their own) with the
  reason in headers, then the message is terminated. When the consumer decides (a rejection,
  an undecodable message, the last failed attempt) it moves the message itself. When nobody
  could (a consumer died during the last attempt), the server's max-deliveries advisory,
  kept in a stream, drives the move. Both name the dead letter `<stream>:<sequence>` as its
  deduplication id, so it is written once even when both happen.
- One message at a time, in stream order. While a batch is worked through, every message of
  it not yet answered is reported in progress (which restarts its ack wait) a few times per
  ack wait: the tail of a slow batch stays with its consumer, and is redelivered to another
  only once this one stops answering (it died). The ack wait outlives the handler timeout;
  the inbox row makes a duplicate's effect a no-op.
"""

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy
from nats.js.errors import NotFoundError

from core.events import CloudEvent
from core.handling import Handler, Verdict, apply, record_finished
from core.jetstream import (
    MSG_ID,
    JetStream,
    JetStreamUnavailableError,
    dead_letter_stream,
    dead_letter_subject,
    exhausted_stream,
    max_deliveries_subject,
    stream_for,
    to_fields,
)
from core.metrics import ConsumerMetrics
from core.settings import ConsumerSettings

if TYPE_CHECKING:
    from nats.js import JetStreamContext

log = structlog.get_logger("core.consumer")

ACK_WAIT_MARGIN_SECONDS = 5.0
GAUGE_INTERVAL_SECONDS = 5.0
MAX_REASON_CHARS = 1000
TRACKED_ATTEMPTS = 10_000  # attempt numbers kept of messages not finished here
# Besides the connection's own failures: a JetStream request that found nothing to answer it.
OUTAGES = (JetStreamUnavailableError, nats.errors.Error, OSError)


class JetStreamConsumer:
    def __init__(
        self,
        jetstream: JetStream,
        streams: Sequence[str],
        handlers: Mapping[str, Handler],
        settings: ConsumerSettings,
        metrics: ConsumerMetrics,
        *,
        name: str,
    ) -> None:
        self._jetstream = jetstream
        self._topics = list(streams)
        self._handlers = handlers
        self._settings = settings
        self.metrics = metrics
        self.name = name
        self.group = settings.group
        self._subscriptions: dict[str, JetStreamContext.PullSubscription] = {}
        self._advisories: dict[str, JetStreamContext.PullSubscription] = {}
        self._attempts: dict[int, int] = {}  # stream sequence: the last attempt handled here
        timeout = settings.handler_timeout_seconds
        self._ack_wait = timeout + min(ACK_WAIT_MARGIN_SECONDS, timeout)

    async def ensure_groups(self) -> None:
        """Streams, the durable consumer (from the stream's start) and its advisory keeper."""
        js = await self._jetstream.context()
        for topic in self._topics:
            stream, exhausted = stream_for(topic), exhausted_stream(topic, self.group)
            await self._jetstream.ensure_topic_stream(topic)
            await self._jetstream.ensure_stream(
                dead_letter_stream(topic), dead_letter_subject(topic)
            )
            await self._jetstream.ensure_stream(
                exhausted,
                max_deliveries_subject(topic, self.group),
                retention=RetentionPolicy.WORK_QUEUE,
            )
            config = ConsumerConfig(
                durable_name=self.group,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                filter_subject=topic,
                max_deliver=self._settings.max_retries + 1,
                # Outlives the handler, which times out first: only a dead consumer's lingers.
                ack_wait=self._ack_wait,
            )
            await js.add_consumer(stream, config)  # creates it, or updates its settings
            await js.add_consumer(
                exhausted, ConsumerConfig(durable_name=self.group, ack_policy=AckPolicy.EXPLICIT)
            )
            self._subscriptions[topic] = await js.pull_subscribe_bind(self.group, stream)
            self._advisories[topic] = await js.pull_subscribe_bind(self.group, exhausted)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the message in hand is always finished first."""
        mover = asyncio.create_task(self._move_exhausted_until(stop))
        try:
            while not stop.is_set():
                try:
                    if not self._subscriptions:
                        await self.ensure_groups()
                    await self.read_once(stop)
                except OUTAGES as error:
                    log.warning("consumer.nats_unavailable", error=str(error) or repr(error))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            stop.set()
            await mover
        log.info("consumer.stopped", consumer=self.name)

    async def read_once(self, stop: asyncio.Event | None = None) -> int:
        """Fetch and handle what is waiting (blocking up to `block_ms`); how many were handled."""
        fetched = await asyncio.gather(*(self._fetch(topic) for topic in self._topics))
        unanswered = [message for messages in fetched for message in messages]
        keeper = asyncio.create_task(self._keep_in_progress(unanswered))
        handled = 0
        try:
            for topic, messages in zip(self._topics, fetched, strict=True):
                for message in messages:
                    if stop is not None and stop.is_set():
                        await message.nak()  # the rest go back at once, for whoever runs on
                    else:
                        await self.handle(topic, message)
                        handled += 1
                    unanswered.remove(message)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return handled

    async def _keep_in_progress(self, unanswered: list[Msg]) -> None:
        """Restart the ack wait of what is still waiting its turn, three times per ack wait."""
        while unanswered:
            await asyncio.sleep(self._ack_wait / 3)
            for message in list(unanswered):
                with contextlib.suppress(*OUTAGES):
                    await message.in_progress()

    async def _fetch(self, topic: str) -> list[Msg]:
        timeout, subscription = self._settings.block_ms / 1000, self._subscriptions[topic]
        try:
            return await subscription.fetch(self._settings.batch_size, timeout=timeout)
        except TimeoutError:  # nothing came (the client raises both kinds)
            return []

    async def handle(self, topic: str, message: Msg) -> None:
        attempt = self._attempt(message)
        try:
            event = CloudEvent.from_fields(to_fields(message.headers, message.data))
        except (UnicodeDecodeError, ValueError) as error:
            await self._dead_letter(topic, message, f"undecodable: {error}", attempts=0)
            return
        handler = self._handlers.get(event.type)
        if handler is None:  # a type, or a version, this service has not learnt yet
            await self._dead_letter(topic, message, f"no handler for type {event.type}", 0)
            return
        outcome = await apply(
            handler,
            event,
            stream=topic,
            attempt=attempt,
            last_attempt=attempt > self._settings.max_retries,
            system="nats",
            timeout_seconds=self._settings.handler_timeout_seconds,
            metrics=self.metrics,
        )
        if outcome.verdict in {Verdict.DONE, Verdict.DUPLICATE}:
            await message.ack_sync()
            self._attempts.pop(message.metadata.sequence.stream, None)
            record_finished(self.metrics, topic, event, outcome.verdict.value)
        elif outcome.verdict is Verdict.REJECTED:
            await self._dead_letter(topic, message, f"rejected: {outcome.error}", attempt)
        elif attempt > self._settings.max_retries:
            await self._dead_letter(topic, message, f"failed: {outcome.error!r}", attempt)
        else:
            await message.nak(delay=self._backoff(attempt))
            self.metrics.messages.labels(topic, "retry").inc()

    def _attempt(self, message: Msg) -> int:
        """The server's delivery count, or one more than the last attempt here if that is more."""
        sequence = message.metadata.sequence.stream
        attempt = max(message.metadata.num_delivered, self._attempts.pop(sequence, 0) + 1)
        self._attempts[sequence] = attempt
        if len(self._attempts) > TRACKED_ATTEMPTS:  # the oldest was finished elsewhere
            del self._attempts[next(iter(self._attempts))]
        return attempt

    def _backoff(self, attempt: int) -> float:
        jitter = random.uniform(0.8, 1.2)  # noqa: S311 - spreads retries only
        return float(self._settings.retry_base_seconds * 2 ** (attempt - 1) * jitter)

    async def _dead_letter(self, topic: str, message: Msg, reason: str, attempts: int) -> None:
        sequence, headers = message.metadata.sequence.stream, message.headers
        await self._publish_dead_letter(topic, headers, message.data, reason, attempts, sequence)
        await message.term()
        self._attempts.pop(sequence, None)
        await self._jetstream.flush()

    async def _publish_dead_letter(
        self,
        topic: str,
        headers: Mapping[str, str] | None,
        payload: bytes,
        reason: str,
        attempts: int,
        sequence: int,
    ) -> None:
        """The message byte for byte, its headers, and why it died; written at most once."""
        js = await self._jetstream.context()
        letter = {
            **(headers or {}),
            MSG_ID: f"{stream_for(topic)}:{sequence}",
            # A header is one line: a multi-line error message is folded onto it.
            "dlq_reason": " ".join(reason.split())[:MAX_REASON_CHARS],
            "dlq_attempts": str(attempts),
            "dlq_stream": topic,
            "dlq_entry_id": str(sequence),
            "dlq_group": self.group,
        }
        await js.publish(dead_letter_subject(topic), payload, headers=letter)
        self.metrics.messages.labels(topic, "dead_letter").inc()
        log.error(
            "consumer.message_dead_lettered",
            stream=topic,
            entry_id=str(sequence),
            reason=letter["dlq_reason"],
            attempts=attempts,
        )

    async def move_exhausted_once(self) -> int:
        """Dead-letter the messages whose deliveries ran out with no verdict (see above)."""
        moved = 0
        js = await self._jetstream.context()
        for topic, subscription in self._advisories.items():
            try:
                advisories = await subscription.fetch(10, timeout=0.2)
            except TimeoutError:
                continue
            for advisory in advisories:
                facts = json.loads(advisory.data)
                sequence, deliveries = int(facts["stream_seq"]), int(facts["deliveries"])
                try:
                    original = await js.get_msg(stream_for(topic), sequence)
                    headers, payload = original.headers, original.data or b""
                    reason = "attempts exhausted"
                except NotFoundError:
                    headers, payload, reason = None, b"", "entry no longer exists"
                await self._publish_dead_letter(
                    topic, headers, payload, reason, deliveries, sequence
                )
                await advisory.ack_sync()
                moved += 1
        return moved

    async def refresh_gauges(self) -> None:
        js = await self._jetstream.context()
        for topic in self._topics:
            info = await js.stream_info(dead_letter_stream(topic))
            self.metrics.dead_letters.labels(topic).set(info.state.messages)

    async def _move_exhausted_until(self, stop: asyncio.Event) -> None:
        gauges_due = 0.0
        while not stop.is_set():
            try:
                if self._advisories:
                    if time.monotonic() >= gauges_due:
                        gauges_due = time.monotonic() + GAUGE_INTERVAL_SECONDS
                        await self.refresh_gauges()
                    await self.move_exhausted_once()
            except Exception:  # the mover must outlive any one bad advisory or outage
                log.exception("consumer.move_exhausted_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.25)
