"""The broker `ORDERS_BROKER__KIND` names, for the publisher, the consumer and the operator
commands: the one place that knows Redis Streams and NATS JetStream apart."""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from core.consumer import StreamConsumer
from core.dead_letters import DeadLetters, RedisDeadLetters
from core.handling import Consumer, Handler
from core.jetstream import JetStream
from core.jetstream.broker import JetStreamBroker
from core.jetstream.consumer import JetStreamConsumer
from core.jetstream.dead_letters import JetStreamDeadLetters
from core.metrics import ConsumerMetrics
from core.outbox.broker import MessageBroker, RedisStreamsBroker
from core.resources import build_redis
from core.settings import CoreSettings


def build_broker(settings: CoreSettings) -> MessageBroker:
    """The outbox publisher's broker; closing it closes its connection."""
    timeout = settings.outbox.publish_timeout_seconds
    if settings.broker.kind == "nats":
        return JetStreamBroker(
            JetStream(settings.broker, timeout_seconds=timeout), timeout_seconds=timeout
        )
    return RedisStreamsBroker(
        build_redis(settings.redis), maxlen=settings.outbox.stream_maxlen, timeout_seconds=timeout
    )


@asynccontextmanager
async def open_consumer(
    settings: CoreSettings,
    streams: Sequence[str],
    handlers: Mapping[str, Handler],
    metrics: ConsumerMetrics,
    *,
    name: str,
) -> AsyncIterator[Consumer]:
    """A consumer of `streams` in the group `ORDERS_CONSUMER__GROUP`, and its connection."""
    options = settings.consumer
    if settings.broker.kind == "nats":
        jetstream = JetStream(settings.broker)
        try:
            yield JetStreamConsumer(jetstream, streams, handlers, options, metrics, name=name)
        finally:
            await jetstream.close()
        return
    redis = build_redis(settings.redis, blocking_ms=options.block_ms)
    try:
        yield StreamConsumer(redis, streams, handlers, options, metrics, name=name)
    finally:
        await redis.aclose()


@asynccontextmanager
async def open_dead_letters(settings: CoreSettings) -> AsyncIterator[DeadLetters]:
    if settings.broker.kind == "nats":
        jetstream = JetStream(settings.broker)
        try:
            yield JetStreamDeadLetters(jetstream)
        finally:
            await jetstream.close()
        return
    redis = Redis.from_url(settings.redis.url.get_secret_value())
    try:
        yield RedisDeadLetters(redis)
    finally:
        await redis.aclose()
