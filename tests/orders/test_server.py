"""The real server process, started as the README and the image start it, over real HTTP."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orders.settings import OrdersSettings
from tests.support import bearer, order_payload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(database: OrdersSettings) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "ORDERS_ENVIRONMENT": "test",
        "ORDERS_DATABASE__NAME": database.database.name,
        "ORDERS_SERVER__PORT": str(port),
        "ORDERS_REDIS__URL": database.redis.url.get_secret_value(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "orders", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def wait_until_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a bound for a loaded machine, not a speed goal
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the server did not become ready")


def test_readme_walkthrough_runs_as_written(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    base_url, _ = server
    readme = Path("README.md").read_text()
    script = readme.split("## Walkthrough", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    script = script.replace("localhost:8000", base_url.removeprefix("http://")).replace(
        "uv run orders", f"{sys.executable} -m orders"
    )
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    statuses = re.findall(r"HTTP/1.1 (\d{3})", result.stdout)
    assert statuses == ["401", "201", "201", "200", "200", "412", "200", "409"]
    assert result.stdout.lower().count("idempotent-replayed: true") == 1
    assert '"status":"ready"' in result.stdout


def test_served_over_http_and_stops_cleanly_on_sigterm(
    server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base_url, process = server
    with httpx.Client(base_url=base_url, headers=bearer(OrdersSettings())) as client:
        created = client.post("/v1/orders", json=order_payload())
        assert created.status_code == 201
        fetched = client.get(created.headers["location"])
        assert fetched.json() == created.json()
        missing = client.get("/nowhere")
        assert missing.headers["content-type"] == "application/problem+json"

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    # uvicorn finishes the shutdown, then re-raises the signal so the exit status tells why.
    assert process.returncode in {0, -signal.SIGTERM}
    assert b"Application shutdown complete" in output
