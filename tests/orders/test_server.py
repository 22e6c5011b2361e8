"""The real server process over real HTTP: it answers and stops cleanly."""

import signal
import subprocess

import httpx
import pytest

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
