"""What the publisher needs from a broker, and the Redis Streams adapter.

Another broker (RabbitMQ, NATS JetStream, Kafka) is one more class with `publish` and `close`;
ordering, retries and dead events stay in the publisher.
"""

import asyncio
from collections.abc import Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.events import CloudEvent


class PublishError(Exception):
    """The broker refused one message; retrying it later may work."""


class PermanentPublishError(PublishError):
    """The broker will never take this message: it goes to the dead events at once."""


class BrokerUnavailableError(Exception):
    """The broker could not be reached: nothing is known to be published; try the batch later."""


class MessageBroker(Protocol):
    system: str  # OpenTelemetry's `messaging.system`: redis, nats, kafka ...

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        """Send (topic, event) pairs; one result per message, in order, None when taken."""
        ...

    async def close(self) -> None: ...


# Error replies that say the server, not the message, is the problem: nothing is charged to
# the events, and the batch is tried again once Redis recovers.
_SERVER_CONDITIONS = (
    "OOM", "READONLY", "NOPERM", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN",
    "TRYAGAIN", "NOREPLICAS",
)  # fmt: skip
# The key exists with another type: no retry will ever succeed.
_PERMANENT_CONDITIONS = ("WRONGTYPE",)


class RedisStreamsBroker:
    """One stream per topic; CloudEvents attributes become entry fields."""

    system = "redis"

    def __init__(self, redis: Redis, *, maxlen: int, timeout_seconds: float) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._timeout = timeout_seconds

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        pipeline = self._redis.pipeline(transaction=False)
        for topic, event in messages:
            # MAXLEN ~ only guards memory; consumer groups, not trimming, track progress.
            pipeline.xadd(topic, event.to_fields(), maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(self._timeout):
                replies = await pipeline.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as error:
            raise BrokerUnavailableError(str(error) or type(error).__name__) from error
        return [_result(reply) for reply in replies]

    async def close(self) -> None:
        await self._redis.aclose()


def _result(reply: object) -> PublishError | None:
    if not isinstance(reply, Exception):
        return None
    message = str(reply)
    # redis-py strips the code of the errors it has a class for, and keeps it as status_code.
    code = getattr(reply, "status_code", None) or message.split(" ", 1)[0]
    if code in _SERVER_CONDITIONS:
        raise BrokerUnavailableError(f"{code} {message}")
    if code in _PERMANENT_CONDITIONS:
        return PermanentPublishError(message)
    return PublishError(message)
