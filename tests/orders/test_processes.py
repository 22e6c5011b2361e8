"""The publisher and the consumer as the image runs them: each serves its metrics while it runs
and stops cleanly on SIGTERM."""

import signal
import subprocess

import pytest

from orders.settings import OrdersSettings
from tests.support import free_port, start_command, wait_until_ready

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def stops_cleanly_after_serving_metrics(process: subprocess.Popen[bytes], port: int) -> None:
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process, path="/metrics")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_publisher_serves_metrics_and_stops_on_sigterm(database: OrdersSettings) -> None:
    port = free_port()
    process = start_command(database, "publish", ORDERS_OUTBOX__METRICS_PORT=str(port))
    stops_cleanly_after_serving_metrics(process, port)


def test_the_consumer_serves_metrics_and_stops_on_sigterm(database: OrdersSettings) -> None:
    port = free_port()
    process = start_command(database, "consume", ORDERS_CONSUMER__METRICS_PORT=str(port))
    stops_cleanly_after_serving_metrics(process, port)
