"""Who holds what, for the Redis Streams consumer: a holder lease per running consumer, and a
processing lease per event in flight.

A consumer renews its holder lease while it runs. The entries it has pending are its own; the
others claim them, and take over the processing lease of the event it was running, only once
that lease has expired: the holder is gone.
"""

import asyncio
import contextlib
from collections.abc import Iterable
from enum import StrEnum

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("core.consumer")

# How long a consumer that stopped renewing is still taken to hold its entries: many renewals
# long, so a loaded event loop is not mistaken for a dead process.
HOLDER_LEASE_SECONDS = 3.0
PROCESSING = "processing:"


class Lease(StrEnum):
    TAKEN = "taken"
    DONE = "done"  # the event was applied already
    BUSY = "busy"  # a live consumer runs it


class Holders:
    def __init__(self, redis: Redis, group: str, name: str, processing_seconds: float) -> None:
        self._redis = redis
        self._group = group
        self._name = name
        self._processing_ms = int(processing_seconds * 1000)

    async def renew(self) -> None:
        await self._redis.set(self._key(self._name), "1", px=int(HOLDER_LEASE_SECONDS * 1000))

    async def renew_until(self, stop: asyncio.Event) -> None:
        """Renew apart from the handlers, however long one of them runs; let go at the end,
        so what this consumer leaves pending is for the others at once."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HOLDER_LEASE_SECONDS / 6)
            if stop.is_set():
                break
            try:
                await self.renew()
            except RedisError as error:
                log.warning("consumer.redis_unavailable", error=str(error))
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._key(self._name))

    async def alive(self, consumers: Iterable[str]) -> set[str]:
        """Which of the other consumers still hold their entries."""
        others = [consumer for consumer in dict.fromkeys(consumers) if consumer != self._name]
        if not others:
            return set()
        leases = await self._redis.mget([self._key(consumer) for consumer in others])
        return {consumer for consumer, lease in zip(others, leases, strict=True) if lease}

    async def take(self, key: str) -> Lease:
        """The processing lease of one event; it outlives the handler, which times out."""
        mine = PROCESSING + self._name
        if await self._redis.set(key, mine, nx=True, px=self._processing_ms):
            return Lease.TAKEN
        seen: bytes | None = await self._redis.get(key)  # type: ignore[assignment]
        if seen == b"done":
            return Lease.DONE
        # Its holder died mid-handler: waiting out the lease would let the entries after it,
        # of the same key, go first. Taken over unless another consumer did so already. A
        # lease of this consumer's own is left from an earlier run: it runs one at a time.
        holder = (seen or b"").decode().removeprefix(PROCESSING)
        if (
            seen is not None
            and not await self.alive([holder])
            and await self._redis.set(key, mine, xx=True, px=self._processing_ms, get=True) == seen
        ):
            return Lease.TAKEN
        return Lease.BUSY

    def _key(self, consumer: str) -> str:
        return f"holder:{self._group}:{consumer}"
