"""One face over each broker, so a single suite of drills runs against every adapter.

A new adapter (Kafka, say) joins the contract by adding a harness here and its name to the
`broker` fixture's parameters: the tests that take `broker` are the contract it must pass.
"""

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import nats
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg, StreamConfig
from nats.js.errors import NoStreamResponseError, NotFoundError
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from redis.asyncio import Redis

from core.consumer import StreamConsumer
from core.dead_letters import DeadLetters, RedisDeadLetters
from core.events import CloudEvent
from core.handling import Consumer, Handler
from core.jetstream import MSG_ID, JetStream, stream_for, to_fields, to_message
from core.jetstream.broker import JetStreamBroker
from core.jetstream.consumer import JetStreamConsumer
from core.jetstream.dead_letters import JetStreamDeadLetters
from core.metrics import ConsumerMetrics
from core.outbox.broker import MessageBroker, RedisStreamsBroker
from core.settings import ConsumerSettings
from orders.settings import OrdersSettings
from tests.support import NatsServer, RedisServer


class Server(Protocol):
    url: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class BrokerHarness(Protocol):
    kind: str
    settings: OrdersSettings  # the test settings, pointed at this broker

    def own_server(self, directory: Path) -> tuple[Server, "BrokerHarness"]:
        """A server of the test's own, which it may stop and start, and a harness on it."""
        ...

    def adapter(self) -> MessageBroker:
        """The outbox publisher's adapter."""
        ...

    def consumer(
        self, topic: str, handlers: Mapping[str, Handler], options: ConsumerSettings, name: str
    ) -> Consumer: ...

    def dead_letters(self) -> DeadLetters: ...

    async def publish(self, topic: str, *events: CloudEvent) -> None:
        """As another service publishes: its events, each once (as the broker sees it)."""
        ...

    async def publish_copy(self, topic: str, event: CloudEvent) -> None:
        """The event again, past whatever deduplication the broker itself does."""
        ...

    async def publish_raw(self, topic: str, fields: Mapping[str, str]) -> None:
        """A message in the broker's binding made of these fields, valid or not."""
        ...

    async def read(self, topic: str) -> list[dict[str, str]]:
        """Every message on the topic, oldest first, as CloudEvent attributes and `data`."""
        ...

    async def count(self, topic: str) -> int: ...

    async def outstanding(self, topic: str, group: str) -> int:
        """Messages the group has not finished: not yet delivered, or delivered and unacked."""
        ...

    async def abandon_one(self, topic: str, group: str) -> None:
        """A member of the group takes one message and dies without answering."""
        ...

    async def refuse(self, topic: str) -> None:
        """Make the broker refuse, for good, every message for the topic."""
        ...

    async def close(self) -> None: ...


class RedisHarness:
    kind = "redis"

    def __init__(self, settings: OrdersSettings) -> None:
        self.settings = settings.model_copy(
            update={"broker": settings.broker.model_copy(update={"kind": "redis"})}
        )
        self.redis = Redis.from_url(settings.redis.url.get_secret_value())
        self._clients: list[Redis] = [self.redis]

    def own_server(self, directory: Path) -> tuple[Server, BrokerHarness]:
        server = RedisServer(directory, persistent=True)  # as compose runs it: append-only
        redis = self.settings.redis.model_copy(update={"url": SecretStr(server.url)})
        return server, RedisHarness(self.settings.model_copy(update={"redis": redis}))

    def adapter(self) -> MessageBroker:
        return RedisStreamsBroker(self._client(), maxlen=10_000, timeout_seconds=2)

    def consumer(
        self, topic: str, handlers: Mapping[str, Handler], options: ConsumerSettings, name: str
    ) -> Consumer:
        metrics = ConsumerMetrics(CollectorRegistry())
        return StreamConsumer(self._client(), [topic], handlers, options, metrics, name=name)

    def dead_letters(self) -> DeadLetters:
        return RedisDeadLetters(self.redis)

    async def publish(self, topic: str, *events: CloudEvent) -> None:
        for event in events:
            await self.redis.xadd(topic, event.to_fields())  # type: ignore[arg-type]

    async def publish_copy(self, topic: str, event: CloudEvent) -> None:
        await self.publish(topic, event)  # Redis drops nothing itself

    async def publish_raw(self, topic: str, fields: Mapping[str, str]) -> None:
        await self.redis.xadd(topic, dict(fields))  # type: ignore[arg-type]

    async def read(self, topic: str) -> list[dict[str, str]]:
        """Page by page: one XRANGE of a large stream may outlast the socket timeout."""
        messages: list[dict[str, str]] = []
        start = "-"
        while True:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await self.redis.xrange(  # type: ignore[assignment]
                topic, min=start, count=1000
            )
            messages += [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
            if len(entries) < 1000:
                return messages
            start = "(" + entries[-1][0].decode()

    async def count(self, topic: str) -> int:
        return int(await self.redis.xlen(topic))

    async def outstanding(self, topic: str, group: str) -> int:
        groups = await self.redis.xinfo_groups(topic)
        return sum(
            int(g["lag"] or 0) + int(g["pending"]) for g in groups if g["name"] == group.encode()
        )

    async def abandon_one(self, topic: str, group: str) -> None:
        await self.redis.xreadgroup(group, "crashed", {topic: ">"}, count=1)

    async def refuse(self, topic: str) -> None:
        await self.redis.set(topic, "not a stream")  # WRONGTYPE for every XADD

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()

    def _client(self) -> Redis:
        client = Redis.from_url(self.settings.redis.url.get_secret_value())
        self._clients.append(client)
        return client


class NatsHarness:
    kind = "nats"

    def __init__(self, settings: OrdersSettings, url: str) -> None:
        broker = settings.broker.model_copy(update={"kind": "nats", "nats_url": SecretStr(url)})
        self.settings = settings.model_copy(update={"broker": broker})
        self.url = url
        self._connections: list[JetStream] = []
        self._client: Client | None = None

    def own_server(self, directory: Path) -> tuple[Server, BrokerHarness]:
        server = NatsServer(directory)
        return server, NatsHarness(self.settings, server.url)

    def adapter(self) -> MessageBroker:
        return JetStreamBroker(self._jetstream(), timeout_seconds=2)

    def consumer(
        self, topic: str, handlers: Mapping[str, Handler], options: ConsumerSettings, name: str
    ) -> Consumer:
        metrics = ConsumerMetrics(CollectorRegistry())
        return JetStreamConsumer(self._jetstream(), [topic], handlers, options, metrics, name=name)

    def dead_letters(self) -> DeadLetters:
        return JetStreamDeadLetters(self._jetstream())

    async def publish(self, topic: str, *events: CloudEvent) -> None:
        for event in events:
            headers, payload = to_message(event)
            await self._publish(topic, payload, headers)

    async def publish_copy(self, topic: str, event: CloudEvent) -> None:
        headers, payload = to_message(event)
        await self._publish(topic, payload, {**headers, MSG_ID: f"copy-{uuid.uuid4()}"})

    async def publish_raw(self, topic: str, fields: Mapping[str, str]) -> None:
        headers = {f"ce-{name}": value for name, value in fields.items() if name != "data"}
        await self._publish(topic, fields.get("data", "").encode(), headers)

    async def read(self, topic: str) -> list[dict[str, str]]:
        """Through an ephemeral consumer of its own, as a new subscriber reads the stream."""
        js = (await self._nats()).jetstream()
        total = await self.count(topic)
        if not total:
            return []
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
        )
        name = (await js.add_consumer(stream_for(topic), config)).name
        subscription = await js.pull_subscribe_bind(name, stream_for(topic))
        messages: list[dict[str, str]] = []
        while len(messages) < total:
            batch = await subscription.fetch(min(total - len(messages), 1000), timeout=10)
            messages += [to_fields(message.headers, message.data) for message in batch]
        await subscription.unsubscribe()
        await js.delete_consumer(stream_for(topic), name)
        return messages

    async def raw(self, topic: str, sequence: int) -> RawStreamMsg:
        js = (await self._nats()).jetstream()
        return await js.get_msg(stream_for(topic), sequence)

    async def count(self, topic: str) -> int:
        js = (await self._nats()).jetstream()
        try:
            return int((await js.stream_info(stream_for(topic))).state.messages)
        except NotFoundError:
            return 0

    async def outstanding(self, topic: str, group: str) -> int:
        client = await self._nats()
        await client.flush()
        for connection in self._connections:
            await connection.flush()  # acks and terms sent, not only queued
        info = await client.jetstream().consumer_info(stream_for(topic), group)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def abandon_one(self, topic: str, group: str) -> None:
        js = (await self._nats()).jetstream()
        subscription = await js.pull_subscribe_bind(group, stream_for(topic))
        await subscription.fetch(1, timeout=5)
        await subscription.unsubscribe()

    async def refuse(self, topic: str) -> None:
        js = (await self._nats()).jetstream()
        await js.add_stream(StreamConfig(name=stream_for(topic), subjects=[topic], max_msg_size=1))

    async def remove(self, topic: str) -> None:
        """As `nats stream rm` does, under every connection's feet."""
        await (await self._nats()).jetstream().delete_stream(stream_for(topic))

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()
        client = await self._nats()
        js = client.jetstream(timeout=30)  # a loaded machine's JetStream can take seconds
        for stream in await js.streams_info():
            await js.delete_stream(stream.config.name or "")
        await client.close()

    async def _publish(self, topic: str, payload: bytes, headers: dict[str, str]) -> None:
        client = await self._nats()
        js = client.jetstream()
        try:
            await js.stream_info(stream_for(topic))
        except NotFoundError:  # as the adapter would create it
            await self._jetstream().ensure_stream(stream_for(topic), topic)
        # A stream made a moment ago, on a server just started, may not take messages yet
        # (NATS 2.9: "no response from stream"): retried, as the outbox publisher does.
        deadline = time.monotonic() + 30  # a bound for a loaded machine, not a speed goal
        while True:
            try:
                await js.publish(topic, payload, headers=headers)
            except NoStreamResponseError:
                assert time.monotonic() < deadline, f"no stream took a message on {topic}"
                await asyncio.sleep(0.05)
            else:
                return

    async def _nats(self) -> Client:
        if self._client is None:
            self._client = await nats.connect(
                self.url, connect_timeout=2, reconnect_time_wait=0.5, max_reconnect_attempts=3
            )
        return self._client

    def _jetstream(self) -> JetStream:
        connection = JetStream(self.settings.broker, timeout_seconds=2)
        self._connections.append(connection)
        return connection
