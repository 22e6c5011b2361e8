"""The compose stack of a checkout, brought up by scripts/containers and driven as a user does.

The stack runs under a project name of its own and publishes its ports on free ones of
127.0.0.1 (an override file), so it runs beside the PostgreSQL, Redis and NATS of the host and
beside a stack the user runs. That file also hands the services the checkout's `.env.example`,
as a user who copied it to `.env` has it.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

PUBLISHED = {"api": 8000, "postgres": 5432, "redis": 6379, "nats": 4222, "prometheus": 9090}
APP_SERVICES = ("migrate", "api", "publisher", "consumer")
BASE = (*APP_SERVICES, "postgres", "redis")
PROFILES = ("--profile", "nats", "--profile", "observability")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for[T](condition: Callable[[], T | None], what: str, seconds: float = 120) -> T:
    """Poll until condition returns something truthy; a loaded machine gets time."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)


def engine_host(root: Path) -> str:
    """DOCKER_HOST for compose, from `scripts/containers engine` (which installs and starts
    podman where there is no Docker engine); skips where no engine can run at all."""
    result = subprocess.run(
        [root / "scripts" / "containers", "engine"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"no container engine can run on this machine: {result.stderr.strip()}")
    return result.stdout.strip()


class Engine:
    """The Docker API (Docker's or podman's), for what compose does not show."""

    def __init__(self, docker_host: str) -> None:
        path = docker_host.removeprefix("unix://") if docker_host else "/var/run/docker.sock"
        transport = httpx.HTTPTransport(uds=path)
        self.http = httpx.Client(transport=transport, base_url="http://engine", timeout=60)

    def container(self, name: str) -> dict[str, Any]:
        return self.get(f"/containers/{name}/json")

    def image(self, name: str) -> dict[str, Any]:
        return self.get(f"/images/{name}/json")

    def get(self, path: str) -> dict[str, Any]:
        response = self.http.get(path)
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def items(self, path: str, **params: str) -> list[dict[str, Any]]:
        response = self.http.get(path, params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json() if response.content else {}

    def events(self, project: str, since: float) -> list[dict[str, Any]]:
        """The project's container events from `since` (a `time.time()`) to now: with `until`
        the engine answers what it has and closes the stream, so nothing is left reading it."""
        filters = labelled(project, type=["container"])
        params = {"filters": filters, "since": str(int(since)), "until": str(int(time.time()) + 2)}
        response = self.http.get("/events", params=params)
        response.raise_for_status()
        found = [json.loads(line) for line in response.text.splitlines() if line.strip()]
        return [event for event in found if event["timeNano"] >= since * 1e9]


def labelled(project: str, **more: list[str]) -> str:
    """The Docker API's `filters` for what compose made for the project."""
    return json.dumps({"label": [f"com.docker.compose.project={project}"], **more})


@dataclass
class Stack:
    root: Path
    project: str
    directory: Path
    docker_host: str
    ports: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def options(self) -> list[str]:
        return ["--project-name", self.project, "-f", str(self.override())]

    def override(self) -> Path:
        path = self.directory / "compose-test.yml"
        if not path.exists():
            self.ports = {service: free_port() for service in PUBLISHED}
            services: dict[str, Any] = {
                name: {"ports": [f"127.0.0.1:{port}:{PUBLISHED[name]}"]}
                for name, port in self.ports.items()
            }
            for name in APP_SERVICES:
                services.setdefault(name, {})["env_file"] = [str(self.root / ".env.example")]
            # `!override`: replace the published ports instead of adding to them.
            text = yaml.safe_dump({"services": services}).replace("ports:\n", "ports: !override\n")
            path.write_text(text)
        return path

    def environment(self, **extra: str) -> dict[str, str]:
        """This run's, without its service settings; compose and uv from this environment."""
        own = ("ORDERS_", "BILLING_", "VIRTUAL_ENV")
        kept = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        path = f"{Path(sys.executable).parent}{os.pathsep}{kept['PATH']}"
        return {**kept, "PATH": path, "DOCKER_HOST": self.docker_host, **extra}

    def up(self, *options: str, phase: str, **extra: str) -> None:
        """scripts/containers: engine, stand-ins, the image, then `compose ... up --wait`."""
        script = self.root / "scripts" / "containers"
        self.timed(phase, [script, *self.options, *options], self.environment(**extra))

    def argv(self, *args: str) -> list[str]:
        """The README's `docker compose -f compose.yml -f compose-dev.yml`, on this stack."""
        compose = str(Path(sys.executable).parent / "docker-compose")
        return [compose, "-f", "compose.yml", "-f", "compose-dev.yml", *self.options, *args]

    def compose(self, *args: str, phase: str | None = None, **extra: str) -> str:
        return self.timed(phase, self.argv(*args), self.environment(**extra))

    def timed(self, phase: str | None, argv: list[Any], env: dict[str, str]) -> str:
        started = time.monotonic()
        result = subprocess.run(
            argv, cwd=self.root, env=env, capture_output=True, text=True, timeout=1200, check=False
        )
        assert result.returncode == 0, f"{argv}\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        if phase:
            self.timings[phase] = round(time.monotonic() - started, 1)
        return result.stdout

    def services(self) -> dict[str, dict[str, Any]]:
        """`compose ps --all` by service: State, Health, ExitCode."""
        output = self.compose(*PROFILES, "ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in output.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def token(self) -> str:
        command = self.root.joinpath("pyproject.toml").read_text().split("[project.scripts]\n")[1]
        name = command.split(" ", 1)[0]
        return self.compose("exec", "-T", "api", name, "token").strip()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['api']}{path}"

    def report(self) -> None:
        print(f"\ncontainers {self.project}: {self.timings}")  # noqa: T201 - the phases' times


def stack_of(root: Path, directory: Path, project: str) -> Iterator[Stack]:
    """The stack up as scripts/containers brings it; down with its volumes after, whatever
    profiles the tests added."""
    stack = Stack(root, project, directory, engine_host(root))
    try:
        stack.up("up", "--wait", phase="build and up")
        yield stack
    finally:
        stack.compose(*PROFILES, "down", "--volumes", "--remove-orphans")
        stack.report()
