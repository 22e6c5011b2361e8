"""Prometheus metrics: HTTP and database pool for the API, outbox and consumer for the workers.

One process: metrics live in a registry per app (or worker). Several uvicorn workers: set
PROMETHEUS_MULTIPROC_DIR (`orders serve` does it when ORDERS_SERVER__WORKERS > 1); every worker
writes its values there and /metrics adds them up, so a counter counts every worker's requests.
"""

import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_PID = re.compile(r"_(\d+)\.db$")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "outbox_published_events", "Events the broker accepted.", registry=registry
        )
        self.failed = Counter(
            "outbox_failed_publishes", "Publish attempts the broker refused.", registry=registry
        )
        self.dead = Counter(
            "outbox_dead_events_moved", "Events moved to the dead-event table.", registry=registry
        )
        self.broker_full = Counter(
            "outbox_broker_full_refusals",
            "Batches a full stream refused; their events wait in the outbox.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "outbox_batch_size",
            "Events handled per batch.",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=registry,
        )
        self.claim_seconds = Histogram(
            "outbox_claim_seconds",
            "Time to claim a batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_to_publish = Histogram(
            "outbox_commit_to_publish_seconds",
            "From the event's insert to the broker taking it.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "outbox_pending_events", "Events waiting in the outbox.", registry=registry
        )
        self.oldest_pending_age = Gauge(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting: the primary alert signal.",
            registry=registry,
        )
        self.dead_events = Gauge(
            "outbox_dead_events", "Events in the dead-event table.", registry=registry
        )
        self.keys_held = Gauge(
            "outbox_keys_held",
            "Aggregates held back: backing off after a failure, or behind a dead event.",
            registry=registry,
        )


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "consumer_messages",
            "Messages handled, by result.",
            ["stream", "result"],
            registry=registry,
        )
        self.process_seconds = Histogram(
            "consumer_process_seconds",
            "Handler time per message.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Gauge(
            "consumer_dead_letter_entries",
            "Entries waiting in the stream's dead-letter stream.",
            ["stream"],
            registry=registry,
        )
        self.end_to_end_seconds = Histogram(
            "consumer_end_to_end_seconds",
            "From the event's `time` to its processing: the consumer lag.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


class HttpMetrics:
    """Per request: labelled by method, route template and status class, never the raw path."""

    def __init__(self) -> None:
        # In multiprocess mode values go to files and /metrics reads those: no registry here.
        self.registry = None if multiprocess() else CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "http_requests",
            "Requests handled.",
            ["method", "route", "status_class"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request's start to the end of its response.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled now.",
            ["method"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_size = Gauge(
            "db_pool_size",
            "Connections the pool keeps.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_checked_out = Gauge(
            "db_pool_checked_out",
            "Connections in use.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.pool_overflow = Gauge(
            "db_pool_overflow",
            "Connections open beyond the pool size.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.client_requests = Counter(
            "http_client_requests",
            "Calls to other services, each attempt counted.",
            ["downstream", "method", "route", "status_class"],
            registry=registry,
        )
        self.client_duration = Histogram(
            "http_client_request_duration_seconds",
            "Time per attempt of a call to another service.",
            ["downstream", "method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.client_breaker_state = Gauge(
            "http_client_circuit_state",
            "A downstream's circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["downstream"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.rate_limit_decisions = Counter(
            "rate_limit_decisions",
            "Rate-limit checks: allowed, limited, or failed open while Redis was unreachable.",
            ["group", "outcome"],
            registry=registry,
        )
        self.idempotent_replays = Counter(
            "idempotent_replays",
            "Responses replayed for a repeated Idempotency-Key.",
            registry=registry,
        )
        self.dependency_up = Gauge(
            "dependency_up",
            "1 when the dependency answered the last readiness check, else 0.",
            ["dependency"],
            multiprocess_mode="livemin",
            registry=registry,
        )

    def watch_pool(self, engine: AsyncEngine) -> None:
        """Keep the pool gauges current on every checkout and checkin."""
        pool = engine.sync_engine.pool

        def update(*_: object) -> None:
            self.pool_size.set(pool.size())  # type: ignore[attr-defined]
            self.pool_checked_out.set(pool.checkedout())  # type: ignore[attr-defined]
            self.pool_overflow.set(max(0, pool.overflow()))  # type: ignore[attr-defined]

        update()
        event.listen(pool, "checkout", update)
        event.listen(pool, "checkin", update)

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        forget_dead_workers()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that are gone (killed, restarted): a live sum must not
    count a dead worker's last values for ever."""
    directory = Path(os.environ[MULTIPROCESS_DIR])
    pids = {
        int(match.group(1))
        for f in directory.glob("gauge_live*_*.db")
        if (match := _PID.search(f.name))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            continue
