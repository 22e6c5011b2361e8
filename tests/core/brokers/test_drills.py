"""Reliability drills with real publisher processes, on each broker: shutdown, several
replicas, kill -9, and a broker outage while the API keeps taking orders."""

import asyncio
import os
import random
import signal
import subprocess
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from core.database import build_engine, build_session_factory
from core.events import CloudEvent
from core.metrics import OutboxMetrics
from core.outbox.dead import list_dead_events, replay_dead_event
from core.outbox.publisher import OutboxPublisher
from core.outbox.writer import OutboxWriter
from core.unit_of_work import InboxEntry, UnitOfWork
from orders.events import published_events
from orders.main import create_app
from orders.worker import run_publisher
from tests.brokers import BrokerHarness
from tests.core.outbox.conftest import (
    TOPIC,
    Refusals,
    StrainedBroker,
    insert_events,
    pending,
    strictly_parsed,
    versions_by_aggregate,
)
from tests.orders.payloads import order_payload
from tests.support import free_port, serve_in_process, start_command


async def wait_until_drained(engine: AsyncEngine, seconds: float = 300) -> None:
    """A bound for a loaded two-core machine with coverage on, not a speed goal."""
    deadline = time.monotonic() + seconds
    while await pending(engine):
        assert time.monotonic() < deadline, "the outbox was not drained"
        await asyncio.sleep(0.1)


def metrics() -> OutboxMetrics:
    return OutboxMetrics(CollectorRegistry())


def stop(*processes: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM to all, then each must finish its batch and exit 0; none is left running."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return exited(*processes)


def exited(*processes: subprocess.Popen[bytes]) -> bytes:
    """Each signalled process exits 0 (a bound far above any grace period); none is left."""
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=60)[0])
        except subprocess.TimeoutExpired:
            process.kill()
            outputs.append(process.communicate()[0])
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output.decode()
    return b"".join(outputs)


@pytest.mark.slow  # a real process, seconds: CI runs it, test-fast does not
async def test_the_publisher_process_delivers_reports_and_stops_cleanly(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    ids = await insert_events(engine, [("a", 1), ("a", 2), ("b", 1)])
    port = free_port()
    process = start_command(broker.settings, "publish", ORDERS_OUTBOX__METRICS_PORT=str(port))
    try:
        await wait_until_drained(engine)
        entries = await broker.read(TOPIC)
        assert sorted(e["id"] for e in entries) == sorted(ids)
        assert all(strictly_parsed(entry)["source"] == "/services/orders" for entry in entries)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        assert "outbox_published_events_total 3.0" in metrics
    finally:
        output = stop(process)
    assert f'"broker": "{broker.kind}"'.encode() in output
    assert b'"event": "outbox.publisher_stopped"' in output


# Full size on one broker, smaller on the other. What these drills load is the publisher: its
# advisory locks, batches and crash safety are the same code whatever the broker, and are
# proven at full size once. What is the adapter's own (a batch sent again after a kill is
# deduplicated by JetStream, repeated within bounds on Redis; per-aggregate order through its
# publish call) shows with every kill landing mid-flow and four publishers contending, which
# the smaller size still gives: 25 batches under 3 kills, 50 aggregates under 4 publishers.
# A generated service's suite, run by the template's tests/generator, sets DRILLS=small: this
# code has been proven at full size in the template's own run.
FULL_SIZE = None if os.environ.get("DRILLS") == "small" else "nats"


def size(broker: BrokerHarness, full: int, smaller: int) -> int:
    return full if broker.kind == FULL_SIZE else smaller


@pytest.mark.slow
async def test_four_publishers_keep_every_aggregates_order(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    keys = [f"agg{n}" for n in range(50)]
    versions = size(broker, 100, 30)
    processes = [
        start_command(broker.settings, "publish", ORDERS_OUTBOX__BATCH_SIZE="50") for _ in range(4)
    ]
    try:
        for version in range(1, versions + 1):  # events keep arriving while all four run
            await insert_events(engine, [(key, version) for key in keys])
        await wait_until_drained(engine)
    finally:
        stop(*processes)
    entries = await broker.read(TOPIC)
    assert len({e["id"] for e in entries}) == len(keys) * versions
    for key, seen in versions_by_aggregate(entries).items():
        first_seen = list(dict.fromkeys(seen))  # a redelivery may repeat, never reorder
        assert first_seen == list(range(1, versions + 1)), key


# Backoffs short enough for a drill, and an idle publisher that looks again soon after one ends.
STRAINED = {
    "batch_size": 20,
    "backoff_base_seconds": 0.2,
    "backoff_max_seconds": 1.0,
    "poll_max_seconds": 0.1,
}


@pytest.mark.slow
async def test_four_publishers_keep_order_while_events_fail_and_holds_come_and_go(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    """Some events are refused twice (their aggregate backs off), three for good (it is held
    until the test replays them); every aggregate still arrives whole, once and in order."""
    keys = [f"agg{n}" for n in range(40)]
    permanent = {("agg3", 1), ("agg10", 12), ("agg20", 24)}
    transient = {(key, v) for n, key in enumerate(keys) for v in range(1, 26) if (n + v) % 9 == 0}
    refusals = Refusals(transient - permanent, permanent)
    outbox = broker.settings.outbox.model_copy(update=STRAINED)
    engines = [build_engine(broker.settings.database) for _ in range(4)]
    brokers = [StrainedBroker(broker.adapter(), refusals) for _ in engines]
    publishers = [
        OutboxPublisher(e, b, outbox, metrics()) for e, b in zip(engines, brokers, strict=True)
    ]
    stop_publishing = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop_publishing)) for p in publishers]
    try:
        ids = []
        for version in range(1, 26):  # events keep arriving while all four run
            ids += await insert_events(engine, [(key, version) for key in keys])
        await replay_dead_events_until_drained(engine, expected=3)
    finally:
        stop_publishing.set()
        await asyncio.gather(*tasks)
        for strained, own in zip(brokers, engines, strict=True):
            await strained.close()
            await own.dispose()
    entries = await broker.read(TOPIC)
    assert Counter(e["id"] for e in entries) == dict.fromkeys(ids, 1)
    assert versions_by_aggregate(entries) == {key: list(range(1, 26)) for key in keys}
    for key in refusals.transient:  # no retry came before its backoff was over
        for n, ((refused_at, _), (retried_at, _)) in enumerate(pairwise(refusals.attempts[key])):
            if n < refusals.times:
                assert retried_at - refused_at >= 0.8 * STRAINED["backoff_base_seconds"] * 2**n, key


async def replay_dead_events_until_drained(engine: AsyncEngine, expected: int) -> None:
    """As an operator would: each event that died goes back, lifting its aggregate's hold."""
    replayed = 0
    deadline = time.monotonic() + 300  # a bound for a loaded machine, not a speed goal
    while replayed < expected or await pending(engine):
        assert time.monotonic() < deadline, f"{replayed} replayed, the outbox not drained"
        for dead in await list_dead_events(engine):
            replayed += await replay_dead_event(engine, dead["event_id"])
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_kill_9_at_random_points_loses_nothing(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    batch, kills, events = 100, 3, size(broker, 5_000, 2_500)
    ids = await insert_events(engine, [(f"agg{n % 200}", n // 200 + 1) for n in range(events)])
    # Kill each publisher once the topic passes a random point, so every kill lands mid-flow.
    for target in sorted(random.sample(range(events // 20, events * 9 // 10), kills)):
        process = start_command(broker.settings, "publish", ORDERS_OUTBOX__BATCH_SIZE=str(batch))
        deadline = time.monotonic() + 300  # a bound on the loop, not a speed goal
        while await broker.count(TOPIC) < target:
            assert process.poll() is None
            assert time.monotonic() < deadline, f"the topic never reached {target} messages"
            await asyncio.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert await pending(engine) > 0
    process = start_command(broker.settings, "publish", ORDERS_OUTBOX__BATCH_SIZE=str(batch))
    try:
        await wait_until_drained(engine)
    finally:
        stop(process)
    delivered = Counter(e["id"] for e in await broker.read(TOPIC))
    assert set(delivered) == set(ids)
    duplicates = sum(delivered.values()) - len(ids)
    assert duplicates <= kills * batch

    try:
        effects = await consume_with_effects(engine, broker)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS drill_effects"))
    assert effects == dict.fromkeys(ids, 1)  # every event applied, none twice


async def consume_with_effects(engine: AsyncEngine, broker: BrokerHarness) -> dict[str, int]:
    """Two consumers apply the topic, each effect in one transaction with its inbox row."""
    async with engine.begin() as connection:  # dropped by the test, whatever happens
        await connection.execute(text("CREATE TABLE drill_effects (event_id text NOT NULL)"))
    sessions = build_session_factory(engine)
    outbox = OutboxWriter(published_events("orders"), broker.settings.events)

    async def apply(event: CloudEvent) -> None:
        inbox = InboxEntry("drill", event.source, event.id)
        async with UnitOfWork(sessions, outbox, inbox) as uow:
            await uow.session.execute(
                text("INSERT INTO drill_effects VALUES (:id)"), {"id": event.id}
            )
            await uow.commit()

    options = broker.settings.consumer.model_copy(update={"group": "drill", "batch_size": 200})
    handlers = {"orders.order.note_changed.v1": apply}
    consumers = [broker.consumer(TOPIC, handlers, options, f"drill-{n}") for n in range(2)]
    for consumer in consumers:
        await consumer.ensure_groups()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    try:
        # Up to 5,000 handler transactions under coverage, loaded: a bound, not a goal.
        deadline = time.monotonic() + 900
        while await broker.outstanding(TOPIC, "drill"):
            assert time.monotonic() < deadline, "the consumers did not catch up"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with engine.begin() as connection:
        rows = await connection.execute(
            text("SELECT event_id, count(*) AS applied FROM drill_effects GROUP BY event_id")
        )
        return {row.event_id: row.applied for row in rows}


@pytest.mark.slow
async def test_the_broker_down_for_ten_seconds_loses_no_order_and_no_event(
    broker: BrokerHarness, tmp_path: Path
) -> None:
    server, own = broker.own_server(tmp_path)
    server.start()
    stop_publisher = asyncio.Event()
    publisher = asyncio.create_task(run_publisher(own.settings, stop_publisher))
    placed: list[str] = []
    try:
        async with serve_in_process(create_app(own.settings)) as client:

            async def place(count: int) -> None:
                for _ in range(count):
                    response = await client.post("/v1/orders", json=order_payload())
                    assert response.status_code == 201
                    placed.append(response.json()["id"])
                    await asyncio.sleep(0.05)

            await place(10)
            server.stop()
            before_outage = len(placed)
            outage = asyncio.create_task(asyncio.sleep(10))
            while not outage.done():
                await place(1)
            placed_while_down = len(placed) - before_outage
            server.start()
            await place(10)

        for _ in range(300):
            entries = await own.read(TOPIC)
            if len({entry["partitionkey"] for entry in entries}) >= len(placed):
                break
            await asyncio.sleep(0.1)
        assert {entry["partitionkey"] for entry in entries} == set(placed)
        assert placed_while_down > 0  # orders kept coming in during the outage
    finally:
        stop_publisher.set()
        await publisher
        await own.close()
        server.stop()
