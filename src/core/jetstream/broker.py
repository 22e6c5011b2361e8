"""The NATS JetStream adapter of the outbox publisher: a batch is sent at once, then every
publish acknowledgement is awaited, so a message counts as taken only once it is stored.

`Nats-Msg-Id` is the event id: a batch published again after a publisher crash (the rows were
not yet deleted) is dropped by JetStream within the duplicate window.
"""

import asyncio
from collections.abc import Sequence

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, ServerError, ServiceUnavailableError

from core.events import CloudEvent
from core.jetstream import (
    JetStream,
    JetStreamUnavailableError,
    stream_for,
    to_message,
)
from core.outbox.broker import (
    BrokerFullError,
    BrokerUnavailableError,
    PermanentPublishError,
    PublishError,
)

# The JetStream error that says this message will never fit the stream.
_MESSAGE_TOO_LARGE = 10054
# A stream at its message or byte limit (with discard new), or JetStream out of storage.
_FULL = {10077, 10047}


class JetStreamBroker:
    """One stream per topic, created on first use; attributes travel as `ce-` headers."""

    system = "nats"

    def __init__(self, jetstream: JetStream, *, timeout_seconds: float) -> None:
        self._jetstream = jetstream
        self._timeout = timeout_seconds

    async def publish(
        self, messages: Sequence[tuple[str, CloudEvent]]
    ) -> list[PublishError | None]:
        try:
            async with asyncio.timeout(self._timeout):
                js = await self._jetstream.context()
                for topic in dict.fromkeys(topic for topic, _ in messages):
                    await self._jetstream.ensure_topic_stream(topic)
                # One message per aggregate per call (the publisher's rounds), so sending them
                # side by side keeps every aggregate's order.
                replies = await asyncio.gather(
                    *(_send(js, topic, event) for topic, event in messages),
                    return_exceptions=True,
                )
        except (TimeoutError, JetStreamUnavailableError, nats.errors.Error) as error:
            raise BrokerUnavailableError(str(error) or type(error).__name__) from error
        try:
            return [_result(reply) for reply in replies]
        except BrokerUnavailableError as error:
            error.taken = [isinstance(reply, PubAck) for reply in replies]
            for (topic, _), reply in zip(messages, replies, strict=True):
                if isinstance(reply, NoStreamResponseError):  # removed since this process made it
                    self._jetstream.forget_stream(stream_for(topic))
            raise

    async def close(self) -> None:
        await self._jetstream.close()


async def _send(js: JetStreamContext, topic: str, event: CloudEvent) -> PubAck:
    headers, payload = to_message(event)
    return await js.publish(topic, payload, headers=headers)


def _result(reply: PubAck | BaseException) -> PublishError | None:
    if isinstance(reply, PubAck):
        return None  # stored, or a duplicate JetStream already had
    if isinstance(reply, nats.errors.MaxPayloadError):
        return PermanentPublishError(str(reply))
    if isinstance(reply, APIError) and reply.err_code in _FULL:
        raise BrokerFullError(reply.description or str(reply)) from reply
    # A 5xx (JetStream off or busy, out of storage or resources) is the server's condition,
    # charged to no event; anything else was said about this message.
    if isinstance(reply, APIError) and not isinstance(reply, ServiceUnavailableError | ServerError):
        if reply.err_code == _MESSAGE_TOO_LARGE:
            return PermanentPublishError(reply.description or str(reply))
        return PublishError(reply.description or str(reply))
    if isinstance(reply, NoStreamResponseError | APIError | nats.errors.Error | OSError):
        raise BrokerUnavailableError(str(reply) or type(reply).__name__) from reply
    raise reply
