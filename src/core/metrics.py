"""Prometheus metrics of the outbox publisher and the consumer, on a registry per process."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.end_to_end_seconds = Histogram(
            "consumer_end_to_end_seconds",
            "From the event's `time` to its processing: the consumer lag.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
