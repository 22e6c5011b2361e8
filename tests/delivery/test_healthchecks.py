"""The healthchecks of the image and of compose, run as Docker runs them, against real processes."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.delivery.support import REPO

# A real process per test (seconds each): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

# `python` in a healthcheck is the image's interpreter; here, the one running the tests.
PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(argv: list[str], **environment: str) -> int:
    """Exit status of a healthcheck's CMD, as Docker runs it in the container."""
    return run_probe(argv, **environment).returncode


def run_probe(argv: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    assert argv[0] == "CMD", "exec form: no shell needed in the image"
    env = {**os.environ, "PATH": PATH, **environment}
    # Docker gives the check its own timeout; this one only bounds a hung test on a loaded machine.
    return subprocess.run(
        argv[1:], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def refused(argv: list[str], **environment: str) -> str:
    """The probe's failure, if it is the one it exists for: exit status 1 (unhealthy, for Docker)
    because a connection was refused; a crash of the check itself (a typo, an import) is not."""
    result = run_probe(argv, **environment)
    lines = result.stderr.strip().splitlines() or [""]
    if result.returncode == 1 and "Connection refused" in lines[-1]:
        return "refused"
    return f"exit status {result.returncode}: {result.stderr}"


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """`orders serve` on a free port; /health needs neither PostgreSQL nor Redis."""
    port = free_port()
    env = {**os.environ, "ORDERS_ENVIRONMENT": "test", "ORDERS_SERVER__PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "orders", "serve"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        # A bound for a loaded machine (a server here once needed over a minute to answer under
        # load), not a speed goal.
        deadline = time.monotonic() + 180
        while not answers(port):
            assert process.poll() is None, f"the server exited with {process.returncode}"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def answers(port: int) -> bool:
    try:
        # Seconds, not one: a loaded machine answers slowly, which is not a server that is down.
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def dockerfile_healthcheck() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("HEALTHCHECK"))
    return ["CMD", *json.loads(line.split(" CMD ", 1)[1])]


def compose_healthcheck(service: str) -> list[str]:
    spec = yaml.safe_load((REPO / "compose.yml").read_text())["services"][service]
    test: list[str] = spec["healthcheck"]["test"]
    return test


def test_the_image_healthcheck_passes_while_the_api_serves(server: int) -> None:
    assert probe(dockerfile_healthcheck(), ORDERS_SERVER__PORT=str(server)) == 0


def test_the_image_healthcheck_fails_when_nothing_serves() -> None:
    assert refused(dockerfile_healthcheck(), ORDERS_SERVER__PORT=str(free_port())) == "refused"


def test_the_compose_api_healthcheck_probes_the_port_compose_sets(server: int) -> None:
    argv = compose_healthcheck("api")
    assert "127.0.0.1:8000/health" in argv[-1]
    assert probe([*argv[:-1], argv[-1].replace(":8000", f":{server}")]) == 0
    assert refused([*argv[:-1], argv[-1].replace(":8000", f":{free_port()}")]) == "refused"


def test_the_worker_healthcheck_passes_when_postgres_and_redis_answer() -> None:
    assert compose_healthcheck("consumer") == compose_healthcheck("publisher")
    assert probe(compose_healthcheck("publisher")) == 0


@pytest.mark.parametrize(
    "unreachable",
    [
        {"ORDERS_DATABASE__PORT": "{port}"},
        {"ORDERS_REDIS__URL": "redis://127.0.0.1:{port}/0"},
    ],
    ids=["postgres-down", "redis-down"],
)
def test_the_worker_healthcheck_fails_when_a_dependency_is_down(
    unreachable: dict[str, str],
) -> None:
    port = str(free_port())
    environment = {name: value.format(port=port) for name, value in unreachable.items()}
    assert refused(compose_healthcheck("publisher"), **environment) == "refused"
