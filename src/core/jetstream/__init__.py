"""NATS JetStream plumbing shared by the publisher, the consumer and the dead-letter commands.

Each topic is a stream capturing the subject `<topic>` (the stream is named like the topic,
dots as underscores), with the limits of the settings (`ORDERS_BROKER__NATS_MAX_*`): by
default a stream at its size limit refuses new events (they wait in the outbox) rather than
drop old messages a consumer has not read; messages older than `nats_max_age_seconds` leave
it. Events travel in the CloudEvents NATS binding's binary mode: attributes as `ce-` headers,
`datacontenttype` as `Content-Type`, `data` as the payload, and `Nats-Msg-Id` = the event id,
so JetStream drops a copy published again within the stream's duplicate window.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

import nats
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError

from core.events import CloudEvent
from core.settings import BrokerSettings

log = structlog.get_logger(__name__)

MSG_ID = "Nats-Msg-Id"
CONTENT_TYPE = "Content-Type"
CE_PREFIX = "ce-"
STREAM_NAME_IN_USE = 10058  # JetStream's error code: the stream exists with another config
RECONNECT_WAIT_SECONDS = 0.5
REQUEST_TIMEOUT_SECONDS = 5.0

# Failures of the connection rather than of one request; JetStream API errors are apart.
CONNECTION_ERRORS = (OSError, nats.errors.ConnectionClosedError, nats.errors.NoServersError)


class JetStreamUnavailableError(Exception):
    """NATS could not be reached, or did not answer in time."""


def stream_for(topic: str) -> str:
    return topic.replace(".", "_")


def dead_letter_subject(topic: str) -> str:
    return f"{topic}.dead-letter"


def dead_letter_stream(topic: str) -> str:
    return f"{stream_for(topic)}_dead-letter"


def exhausted_stream(topic: str, group: str) -> str:
    """Keeps the server's max-deliveries advisories, so none is lost while no consumer runs."""
    return f"{stream_for(topic)}_{group}_exhausted"


def max_deliveries_subject(topic: str, group: str) -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream_for(topic)}.{group}"


def to_message(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Headers and payload in binary mode, the event id as JetStream's deduplication id."""
    fields = event.to_fields()
    data = fields.pop("data")
    headers = {CONTENT_TYPE: fields.pop("datacontenttype"), MSG_ID: event.id}
    headers |= {CE_PREFIX + name: value for name, value in fields.items()}
    return headers, data.encode()


def to_fields(headers: Mapping[str, str] | None, payload: bytes) -> dict[str, str]:
    """The CloudEvent attributes and `data` a message carries, as `CloudEvent.from_fields`
    reads them; raises UnicodeDecodeError on a payload that is not text."""
    headers = headers or {}
    fields = {
        name.removeprefix(CE_PREFIX): value
        for name, value in headers.items()
        if name.startswith(CE_PREFIX)
    }
    if CONTENT_TYPE in headers:
        fields["datacontenttype"] = headers[CONTENT_TYPE]
    fields["data"] = payload.decode()
    return fields


class JetStream:
    """One NATS connection, opened on first use and reconnecting by itself after that."""

    def __init__(
        self, settings: BrokerSettings, *, timeout_seconds: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        self._settings = settings
        self._timeout = timeout_seconds
        self._client: Client | None = None
        self._streams: set[str] = set()

    async def context(self) -> JetStreamContext:
        if self._client is None:
            self._client = await self._connect()
        return self._client.jetstream(timeout=self._timeout)

    async def flush(self) -> None:
        if self._client is not None:
            await self._client.flush(timeout=max(1, round(self._timeout)))

    async def ensure_topic_stream(self, topic: str) -> None:
        """The stream of a topic's events, with the limits of the settings."""
        settings = self._settings
        await self.ensure_stream(
            stream_for(topic),
            topic,
            max_msgs=settings.nats_max_msgs,
            max_bytes=settings.nats_max_bytes,
            max_age=settings.nats_max_age_seconds,
            discard=DiscardPolicy(settings.nats_discard),
        )

    async def ensure_stream(
        self,
        name: str,
        subject: str,
        *,
        retention: RetentionPolicy = RetentionPolicy.LIMITS,
        **limits: Any,
    ) -> None:
        """Create the stream unless this process did already; one created elsewhere is kept
        as it is, whatever its settings (`nats stream edit` changes them)."""
        if name in self._streams:
            return
        config = StreamConfig(
            name=name,
            subjects=[subject],
            retention=retention,
            duplicate_window=self._settings.nats_duplicate_window_seconds,
            **limits,
        )
        js = await self.context()
        try:
            await js.add_stream(config)
        except BadRequestError as error:
            if error.err_code != STREAM_NAME_IN_USE:
                raise
        self._streams.add(name)

    def forget_stream(self, name: str) -> None:
        """The stream went away (`nats stream rm`): the next ensure_stream creates it again."""
        self._streams.discard(name)

    async def close(self) -> None:
        """Close the connection; one lost while reconnecting closes too. nats-py (2.16) then
        writes what it buffered meanwhile to the lost socket and raises: nothing of that could
        be delivered anyway, and what it held unacknowledged is redelivered."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.close()
            except (TypeError, RuntimeError, OSError) as error:
                log.warning("nats.closed_while_disconnected", error=repr(error))

    async def _connect(self) -> Client:
        try:
            # The client retries a refused first connection forever: bounded here.
            async with asyncio.timeout(self._timeout):
                return await nats.connect(
                    self._settings.nats_url.get_secret_value(),
                    connect_timeout=max(1, round(self._timeout)),
                    reconnect_time_wait=RECONNECT_WAIT_SECONDS,
                    max_reconnect_attempts=-1,  # once connected, never give up
                    error_cb=_log_error,
                    disconnected_cb=_log_disconnected,
                    reconnected_cb=_log_reconnected,
                )
        except (TimeoutError, *CONNECTION_ERRORS) as error:
            raise JetStreamUnavailableError(str(error) or type(error).__name__) from error


async def _log_error(error: Exception) -> None:
    log.warning("nats.connection_failed", error=str(error) or type(error).__name__)


async def _log_disconnected() -> None:
    log.warning("nats.disconnected")


async def _log_reconnected() -> None:
    log.info("nats.reconnected")
