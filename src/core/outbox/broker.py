"""What the publisher needs from a broker, and the Redis Streams adapter.

Another broker (RabbitMQ, NATS JetStream, Kafka) is one more class with `publish` and `close`;
ordering, retries and dead events stay in the publisher.
"""

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.events import CloudEvent


class PublishError(Exception):
    """The broker refused one message; retrying it later may work."""


class PermanentPublishError(PublishError):
    """The broker will never take this message: it goes to the dead events at once."""


class BrokerUnavailableError(Exception):
    """The broker could not be reached, or refuses whole batches: try the batch later.

    `taken` says, message by message, which ones of the call it stored before refusing (a
    NATS stream filling up mid-call); empty: none is known to be published."""

    taken: Sequence[bool] = ()


class BrokerFullError(BrokerUnavailableError):
    """A stream holds all it may of messages its readers need: the events wait in the outbox
    until the consumers catch up (or an operator makes room), rather than push those out."""


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
    """One stream per topic; CloudEvents attributes become entry fields.

    A stream holds about `maxlen` entries at most. Past it, the entries every consumer group
    has read are trimmed (XTRIM MINID below the oldest one any group still needs); a stream
    still at its cap refuses new events with BrokerFullError, so no group ever loses an entry
    it has not read. A stream no group reads yet keeps its newest entries only.
    """

    system = "redis"

    def __init__(self, redis: Redis, *, maxlen: int, timeout_seconds: float) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._timeout = timeout_seconds
        self._at_cap: set[str] = set()  # topics whose last known length reached maxlen

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        topics = list(dict.fromkeys(topic for topic, _ in messages))
        pipeline = self._redis.pipeline(transaction=False)
        for topic, event in messages:
            pipeline.xadd(topic, event.to_fields())  # type: ignore[arg-type]
        for topic in topics:
            pipeline.xlen(topic)  # tells when to trim, with no round trip of its own
        try:
            async with asyncio.timeout(self._timeout):
                for topic in self._at_cap.intersection(topics):
                    await self._make_room(topic)
                replies = await pipeline.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError) as error:
            raise BrokerUnavailableError(str(error) or type(error).__name__) from error
        lengths = replies[len(messages) :]
        self._at_cap.update(
            topic
            for topic, length in zip(topics, lengths, strict=True)
            if isinstance(length, int) and length >= self._maxlen
        )
        try:
            return [_result(reply) for reply in replies[: len(messages)]]
        except BrokerUnavailableError as error:
            error.taken = [not isinstance(reply, Exception) for reply in replies[: len(messages)]]
            raise

    async def close(self) -> None:
        await self._redis.aclose()

    async def _make_room(self, topic: str) -> None:
        """Trim what every group has read; raise BrokerFullError if the stream is still full."""
        groups: list[dict[str, Any]] = await self._redis.xinfo_groups(topic)
        if not groups:  # no reader to keep entries for: the newest nine tenths stay
            await self._redis.xtrim(topic, maxlen=self._maxlen * 9 // 10, approximate=True)
            self._at_cap.discard(topic)
            return
        needed = [await self._oldest_needed(topic, group) for group in groups]
        # Approximate: whole nodes below the id only; the default LIMIT keeps each call short.
        while await self._redis.xtrim(topic, minid=_format(min(needed)), approximate=True):
            pass
        length = await self._redis.xlen(topic)
        if length < self._maxlen:
            self._at_cap.discard(topic)
            return
        lagging = max(groups, key=lambda group: int(group.get("lag") or 0))
        raise BrokerFullError(
            f"stream {topic} is full: {length} entries, at least one not yet read by a group "
            f"(most behind: {_text(lagging['name'])}); the events wait in the outbox"
        )

    async def _oldest_needed(self, topic: str, group: dict[str, Any]) -> tuple[int, int]:
        """The group's oldest pending entry, or else the first after its last delivered."""
        if group["pending"]:
            summary = await self._redis.xpending(topic, group["name"])
            if summary["min"] is not None:
                return _parse(summary["min"])
        milliseconds, sequence = _parse(group["last-delivered-id"])
        return milliseconds, sequence + 1


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(entry_id: bytes | str) -> tuple[int, int]:
    milliseconds, _, sequence = _text(entry_id).partition("-")
    return int(milliseconds), int(sequence or 0)


def _format(entry_id: tuple[int, int]) -> str:
    return f"{entry_id[0]}-{entry_id[1]}"


def _result(reply: object) -> PublishError | None:
    if not isinstance(reply, Exception):
        return None
    message = str(reply)
    # redis-py strips the code of the errors it has a class for, and keeps it as status_code.
    code = getattr(reply, "status_code", None) or message.split(" ", 1)[0]
    if code == "OOM":  # maxmemory reached: Redis refuses rather than evicting (noeviction)
        raise BrokerFullError(f"{code} {message}")
    if code in _SERVER_CONDITIONS:
        raise BrokerUnavailableError(f"{code} {message}")
    if code in _PERMANENT_CONDITIONS:
        return PermanentPublishError(message)
    return PublishError(message)
