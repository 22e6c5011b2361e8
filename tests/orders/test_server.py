"""The real server process over real HTTP: it answers and stops cleanly."""

import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from orders.settings import OrdersSettings
from tests.support import (
    free_port,
    start_command,
    wait_until_ready,
)

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow


def test_served_over_http_and_stops_cleanly_on_sigterm(
    server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    base_url, process = server
    with httpx.Client(base_url=base_url) as client:
        assert client.get("/health/ready").json()["status"] == "ready"
        missing = client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    # uvicorn finishes the shutdown, then re-raises the signal so the exit status tells why.
    assert process.returncode in {0, -signal.SIGTERM}
    assert b"Application shutdown complete" in output


@pytest.fixture
def bounded_server(database: OrdersSettings) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A server that closes a connection whose headers take over a second, and serves at most
    two connections at once."""
    port = free_port()
    process = start_command(
        database,
        "serve",
        ORDERS_SERVER__PORT=str(port),
        ORDERS_SERVER__HEADER_TIMEOUT_SECONDS="1",
        ORDERS_SERVER__LIMIT_CONCURRENCY="2",
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process)
        yield port, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_a_client_that_never_finishes_its_headers_is_disconnected(
    bounded_server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = bounded_server
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: slowloris\r\n")  # never the blank line
        slow.settimeout(60)  # a bound for a loaded machine; the server's is one second
        try:
            assert slow.recv(1024) == b""  # closed by the server, nothing answered
        except TimeoutError:
            pytest.fail("the server kept a connection with unfinished headers open")


def test_requests_past_the_concurrency_limit_get_503(
    bounded_server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = bounded_server
    with (
        socket.create_connection(("127.0.0.1", port)),
        socket.create_connection(("127.0.0.1", port)),
    ):
        deadline = time.monotonic() + 30
        while (status := httpx.get(f"http://127.0.0.1:{port}/health").status_code) != 503:
            assert time.monotonic() < deadline, f"still {status} with the limit reached"
            time.sleep(0.05)
    # The idle connections closed: the limit frees again.
    deadline = time.monotonic() + 30
    while httpx.get(f"http://127.0.0.1:{port}/health").status_code != 200:
        assert time.monotonic() < deadline, "the limit never freed"
        time.sleep(0.05)
