"""Slow handlers on each broker: one consumer works one message at a time, in stream order, and
nothing it still holds is handed to anyone else."""

import asyncio
import itertools
import time

from core.events import CloudEvent
from core.handling import Handler
from tests.brokers import BrokerHarness
from tests.core.brokers.conftest import GROUP, STREAM, NewConsumer, event

type Spans = list[tuple[str, str, float, float]]  # consumer, event id, started, finished


def slow(name: str, spans: Spans, seconds: float) -> Handler:
    async def handle(item: CloudEvent) -> None:
        started = time.monotonic()
        await asyncio.sleep(seconds)
        spans.append((name, item.id, started, time.monotonic()))

    return handle


async def wait_for(condition: object, seconds: float = 60) -> None:
    """Polls `condition()` under a bound for a loaded machine, not a speed goal."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


def overlapping(spans: Spans) -> list[tuple[str, str]]:
    ordered = sorted(spans, key=lambda span: span[2])
    return [
        (earlier[1], later[1])
        for earlier, later in itertools.pairwise(ordered)
        if later[2] < earlier[3]
    ]


async def test_a_slow_batch_is_handled_in_order_one_at_a_time_by_the_consumer_holding_it(
    broker: BrokerHarness, new_consumer: NewConsumer
) -> None:
    ids = [f"evt-{n}" for n in range(1, 9)]
    spans: Spans = []
    # Eight 0.4 s handlers outlast both the shortest backoff and the handler timeout: the
    # tail of the batch waits longer than any single message may run.
    options = {"retry_base_seconds": 0.25, "handler_timeout_seconds": 1.0, "batch_size": 10}
    first = new_consumer(slow("c1", spans, 0.4), name="c1", **options)
    second = new_consumer(slow("c2", spans, 0.4), name="c2", **options)
    await first.ensure_groups()
    # One partition key: the events of one aggregate, in their order.
    await broker.publish(STREAM, *(event(i, partitionkey="k") for i in ids))
    stop = asyncio.Event()
    running = [asyncio.create_task(first.run(stop))]
    try:
        await wait_for(lambda: spans)  # the first has taken the whole batch; the second joins
        running.append(asyncio.create_task(second.run(stop)))
        await wait_for(lambda: len(spans) >= len(ids))
        # Every entry answered: none is left that a wrong redelivery could hand out again.
        deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
        while await broker.outstanding(STREAM, GROUP):
            assert time.monotonic() < deadline, "the group never finished its entries"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*running)
    assert [(name, event_id) for name, event_id, _, _ in spans] == [("c1", i) for i in ids]
    assert overlapping(spans) == []
    assert await broker.outstanding(STREAM, GROUP) == 0
