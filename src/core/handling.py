"""The handler contract every consumer keeps, whatever the broker carries the messages.

A handler takes one CloudEvent. Returning means done. `DuplicateEventError` (its inbox row was
already taken) means done before. `PermanentError`, a `DomainError` or a `ValueError` mean a
retry cannot help, except a lost optimistic-lock race; anything else is retried. Each consumer
turns the verdict into its broker's own acts: ack, redelivery later, dead letter.
"""

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import structlog

from core.errors import ConcurrentUpdateError, DomainError
from core.events import CloudEvent
from core.metrics import ConsumerMetrics
from core.tracing import consuming
from core.unit_of_work import DuplicateEventError

log = structlog.get_logger("core.consumer")

Handler = Callable[[CloudEvent], Awaitable[None]]


class PermanentError(Exception):
    """Retrying will not help: the message goes to the dead letters at once."""


class Verdict(StrEnum):
    DONE = "ok"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    error: Exception | None = None


class Consumer(Protocol):
    """What a consumer process runs, on any broker."""

    name: str
    metrics: ConsumerMetrics

    async def ensure_groups(self) -> None: ...

    async def read_once(self, stop: asyncio.Event | None = None) -> int: ...

    async def run(self, stop: asyncio.Event) -> None: ...


async def apply(  # noqa: PLR0913 - the context every log line and span of a message carries
    handler: Handler,
    event: CloudEvent,
    *,
    stream: str,
    attempt: int,
    last_attempt: bool,
    system: str,
    timeout_seconds: float,
    metrics: ConsumerMetrics,
) -> Outcome:
    """Run the handler inside a CONSUMER span continuing the event's trace; judge the result.

    `last_attempt`: no retry is left, so a retryable failure is logged as the final one."""
    bound = log.bind(
        event_id=event.id,
        type=event.type,
        stream=stream,
        attempt=attempt,
        partitionkey=event.partitionkey,
    )
    started = time.perf_counter()
    carrier = {"traceparent": event.traceparent, "tracestate": event.tracestate}
    try:
        with consuming(
            f"process {stream}",
            carrier,
            **{"messaging.system": system, "messaging.message.id": event.id},
        ):
            outcome = await _judge(handler, event, timeout_seconds)
            # Inside the span: these lines carry the trace id of the event they are about.
            _log(outcome, bound, last_attempt=last_attempt)
    finally:
        metrics.process_seconds.labels(stream).observe(time.perf_counter() - started)
    return outcome


async def _judge(handler: Handler, event: CloudEvent, timeout_seconds: float) -> Outcome:
    try:
        async with asyncio.timeout(timeout_seconds):
            await handler(event)
    except DuplicateEventError:
        return Outcome(Verdict.DUPLICATE)
    except ConcurrentUpdateError as error:  # a lost race: the retry may win
        return Outcome(Verdict.RETRY, error)
    except (PermanentError, DomainError, ValueError) as error:
        return Outcome(Verdict.REJECTED, error)
    except Exception as error:  # noqa: BLE001 - any other failure is retried
        return Outcome(Verdict.RETRY, error)
    return Outcome(Verdict.DONE)


def _log(outcome: Outcome, bound: structlog.stdlib.BoundLogger, *, last_attempt: bool) -> None:
    match outcome.verdict:
        case Verdict.DONE:
            bound.info("consumer.message_processed")
        case Verdict.REJECTED:
            bound.warning("consumer.message_rejected", error=str(outcome.error))
        case Verdict.RETRY if last_attempt:
            bound.error("consumer.retries_exhausted", error=repr(outcome.error))
        case Verdict.RETRY:
            bound.warning("consumer.message_failed", error=repr(outcome.error))


def record_finished(metrics: ConsumerMetrics, stream: str, event: CloudEvent, result: str) -> None:
    metrics.messages.labels(stream, result).inc()
    lag = _lag_seconds(event.time)
    if lag is not None:
        metrics.end_to_end_seconds.labels(stream).observe(lag)


def _lag_seconds(event_time: str) -> float | None:
    try:
        moment = dt.datetime.fromisoformat(event_time)
        return max(0.0, (dt.datetime.now(dt.UTC) - moment).total_seconds())
    except (ValueError, TypeError):  # a foreign clock format never costs the message
        return None
