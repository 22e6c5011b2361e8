"""SIGTERM to a publisher process with a large backlog, on each broker: it exits 0 within the
grace period the container gets, and a restarted one publishes the rest, nothing lost and
nothing twice."""

import asyncio
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.brokers import BrokerHarness
from tests.core.outbox.conftest import TOPIC, insert_events, pending
from tests.support import start_command

# Two hundred claims of batch_size (100): far more than one batch is in flight when SIGTERM comes.
BACKLOG = 20_000


def grace_period_seconds() -> float:
    """`stop_grace_period` of the processes in compose.yml: SIGKILL follows it."""
    compose = (Path(__file__).parents[3] / "compose.yml").read_text()
    found = re.search(r"stop_grace_period: (\d+)s", compose)
    assert found is not None, "compose.yml gives no stop_grace_period"
    return float(found.group(1))


def exit_status_within(process: subprocess.Popen[bytes], seconds: float) -> tuple[int, bytes]:
    """As the container runtime waits: past `seconds` the process is killed, and fails."""
    try:
        output = process.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()[0]
        pytest.fail(f"still running {seconds} s after SIGTERM:\n{output.decode()[-2000:]}")
    return process.returncode, output


@pytest.mark.slow
async def test_sigterm_stops_a_publisher_with_a_large_backlog_within_the_grace_period(
    engine: AsyncEngine, broker: BrokerHarness
) -> None:
    ids = await insert_events(engine, [(f"agg{n % 500}", n // 500 + 1) for n in range(BACKLOG)])
    process = start_publisher(broker)
    deadline = time.monotonic() + 300  # a bound on the loop, not a speed goal
    while await broker.count(TOPIC) < 1000:  # well into the backlog
        assert process.poll() is None, process.communicate()[0].decode()
        assert time.monotonic() < deadline, "the publisher never got going"
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    status, output = exit_status_within(process, grace_period_seconds())
    assert status == 0, output.decode()[-2000:]
    assert b"outbox.publisher_stopped" in output
    assert await pending(engine) > 0  # it stopped with the backlog unfinished

    process = start_publisher(broker)
    try:
        deadline = time.monotonic() + 600  # 20,000 events on a loaded machine: a bound only
        while await pending(engine):
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "the restarted publisher did not drain"
            await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        status, output = exit_status_within(process, grace_period_seconds())
    assert status == 0, output.decode()[-2000:]
    delivered = Counter(entry["id"] for entry in await broker.read(TOPIC))
    assert delivered == dict.fromkeys(ids, 1)  # the batch in flight was settled, not redone


def start_publisher(broker: BrokerHarness) -> subprocess.Popen[bytes]:
    return start_command(broker.settings, "publish")
