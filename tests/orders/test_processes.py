"""The publisher and the consumer as the image runs them: each serves its metrics while it runs
and stops cleanly on SIGTERM."""

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from core.jetstream import stream_for
from orders.consumers import consumed_streams
from orders.settings import OrdersSettings
from tests.support import NatsServer, free_port, start_command, wait_until_ready

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The process, killed at the end if the test left it running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def exits_0_on_sigterm(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)  # compose's grace period is 20 s
    assert process.returncode == 0, output.decode()


def test_the_publisher_serves_metrics_and_stops_on_sigterm(database: OrdersSettings) -> None:
    port = free_port()
    with reaped(
        start_command(database, "publish", ORDERS_OUTBOX__METRICS_PORT=str(port))
    ) as process:
        wait_until_ready(f"http://127.0.0.1:{port}", process, path="/metrics")
        exits_0_on_sigterm(process)


def test_the_consumer_serves_metrics_and_stops_on_sigterm(database: OrdersSettings) -> None:
    port = free_port()
    with reaped(
        start_command(database, "consume", ORDERS_CONSUMER__METRICS_PORT=str(port))
    ) as process:
        wait_until_ready(f"http://127.0.0.1:{port}", process, path="/metrics")
        exits_0_on_sigterm(process)


def test_the_consumer_on_nats_exits_0_on_sigterm_after_nats_went_away(
    database: OrdersSettings, tmp_path: Path
) -> None:
    """As `compose down` stops NATS beside the consumer: the client is reconnecting, with the
    fetches it made meanwhile buffered, and the consumer still stops cleanly."""
    server = NatsServer(tmp_path)
    server.start()
    log = tmp_path / "consumer.log"
    env = {"ORDERS_BROKER__KIND": "nats", "ORDERS_BROKER__NATS_URL": server.url}
    with (
        log.open("wb") as output,
        reaped(
            start_command(database, "consume", output=output, ORDERS_CONSUMER__BLOCK_MS="50", **env)
        ) as process,
    ):
        try:
            asyncio.run(until_subscribed(server.url, database))
        finally:
            server.stop()
        # A reconnection failed: 0.5 s after the loss, in which 50 ms fetches were buffered.
        deadline = time.monotonic() + 120  # a bound for a loaded machine, not a speed goal
        while "Connect call failed" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the consumer never noticed NATS was gone"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)  # compose's grace period is 20 s
        assert process.returncode == 0, log.read_text()


async def until_subscribed(url: str, settings: OrdersSettings) -> None:
    """Until the consumer's durable consumer exists on every stream it reads."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for topic in consumed_streams(settings):
            deadline = time.monotonic() + 120  # a bound for a loaded machine, not a speed goal
            while True:
                try:
                    await js.consumer_info(stream_for(topic), settings.consumer.group)
                    break
                except NotFoundError:
                    assert time.monotonic() < deadline, "the consumer never subscribed"
                    await asyncio.sleep(0.1)
    finally:
        await client.close()
