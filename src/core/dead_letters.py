"""Operator commands for the consumer's dead letters: list, show and replay, on any broker."""

from typing import Any, Protocol

from redis.asyncio import Redis

from core.consumer import dead_letter_stream

_Entries = list[tuple[bytes, dict[bytes, bytes]]]
_DEAD_LETTER_FIELDS = ("dlq_reason", "dlq_attempts", "dlq_stream", "dlq_entry_id", "dlq_group")


class DeadLetters(Protocol):
    """Each dead letter: `entry_id`, the event's attributes and `data`, and `dlq_*` fields
    saying why it died (`dlq_reason`, `dlq_attempts`, `dlq_stream`, `dlq_entry_id`)."""

    async def entries(self, stream: str, count: int = 100) -> list[dict[str, str]]: ...

    async def entry(self, stream: str, entry_id: str) -> dict[str, str] | None: ...

    async def replay(self, stream: str, entry_id: str) -> str | None:
        """Publish the event again, same id, and drop the dead letter; the new entry's id."""
        ...


class RedisDeadLetters:
    """The `<stream>:dead-letter` streams."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def entries(self, stream: str, count: int = 100) -> list[dict[str, str]]:
        return await list_dead_letters(self._redis, stream, count)

    async def entry(self, stream: str, entry_id: str) -> dict[str, str] | None:
        return await show_dead_letter(self._redis, stream, entry_id)

    async def replay(self, stream: str, entry_id: str) -> str | None:
        return await replay_dead_letter(self._redis, stream, entry_id)


def _decode(fields: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


async def list_dead_letters(redis: Redis, stream: str, count: int = 100) -> list[dict[str, str]]:
    entries: _Entries = await redis.xrange(dead_letter_stream(stream), count=count)  # type: ignore[assignment]
    return [{"entry_id": entry_id.decode(), **_decode(fields)} for entry_id, fields in entries]


async def show_dead_letter(redis: Redis, stream: str, entry_id: str) -> dict[str, str] | None:
    entries: _Entries = await redis.xrange(  # type: ignore[assignment]
        dead_letter_stream(stream), min=entry_id, max=entry_id
    )
    return _decode(entries[0][1]) if entries else None


async def replay_dead_letter(redis: Redis, stream: str, entry_id: str) -> str | None:
    """Append the original event to its stream again and drop the dead letter, atomically.

    The event keeps its id, so consumers that already applied it recognise the duplicate.
    """
    fields = await show_dead_letter(redis, stream, entry_id)
    if fields is None:
        return None
    original = {k: v for k, v in fields.items() if k not in _DEAD_LETTER_FIELDS}
    async with redis.pipeline(transaction=True) as pipeline:
        pipeline.xadd(stream, original)  # type: ignore[arg-type]
        pipeline.xdel(dead_letter_stream(stream), entry_id)
        new_id, _ = await pipeline.execute()
    return str(new_id.decode() if isinstance(new_id, bytes) else new_id)
