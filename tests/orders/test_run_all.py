"""`make run`'s three processes together, driven by the events of docs/walkthrough.md."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orders.settings import OrdersSettings
from tests.support import free_port, service_env, wait_until_ready

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

Ports = dict[str, int]


@pytest.fixture
def stack(database: OrdersSettings) -> Iterator[tuple[Ports, subprocess.Popen[bytes]]]:
    ports = {"api": free_port(), "publisher": free_port(), "consumer": free_port()}
    env = service_env(
        database,
        ORDERS_COMMAND=f"{sys.executable} -m orders",
        ORDERS_SERVER__PORT=str(ports["api"]),
        ORDERS_OUTBOX__METRICS_PORT=str(ports["publisher"]),
        ORDERS_CONSUMER__METRICS_PORT=str(ports["consumer"]),
    )
    process = subprocess.Popen(
        ["scripts/run-all"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{ports['api']}", process)
        yield ports, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_an_order_flows_through_the_streams_as_the_readme_shows(
    stack: tuple[Ports, subprocess.Popen[bytes]], database: OrdersSettings
) -> None:
    ports, process = stack
    redis_port = database.redis.url.get_secret_value().rsplit(":", 1)[1].split("/")[0]
    guide = Path("docs/walkthrough.md").read_text()
    script = guide.split("## Events, end to end", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    script = (
        script.replace("localhost:8000", f"127.0.0.1:{ports['api']}")
        .replace("localhost:9101", f"127.0.0.1:{ports['publisher']}")
        .replace("localhost:9102", f"127.0.0.1:{ports['consumer']}")
        .replace("redis-cli ", f"redis-cli -p {redis_port} ")
        .replace(".venv/bin/orders", f"{sys.executable} -m orders")
    )
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "orders.order.placed.v1" in out
    assert "\nconfirmed\n" in out
    assert out.index("orders.order.confirmed.v1") > out.index("confirmed\n")
    assert "outbox_published_events_total 2.0" in out
    assert 'consumer_messages_total{result="ok",stream="payments"} 1.0' in out

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    for stopped in (
        b"Application shutdown complete",
        b"outbox.publisher_stopped",
        b"consumer.stopped",
    ):
        assert stopped in output
