"""Helpers shared by the tests."""

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from core.resources import Resources
from core.security import declared_scopes
from core.settings import CoreSettings
from core.tokens import mint_token
from orders.routes import v1
from orders.settings import OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork

ALL_SCOPES = tuple(declared_scopes(v1.routes))


def bearer(
    settings: CoreSettings, subject: str = "tester", scopes: Sequence[str] = ALL_SCOPES
) -> dict[str, str]:
    """An Authorization header the app accepts (the development HS256 secret)."""
    return {"Authorization": "Bearer " + mint_token(settings.auth, subject, scopes)}


@asynccontextmanager
async def serve_in_process(
    app: FastAPI, *, authenticated: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in process, as a server would; the client sends a
    token with every scope unless `authenticated` is false."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})  # what uvicorn does with lifespan state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        resources: Resources = dict(state or {})["resources"]
        headers = bearer(resources.settings) if authenticated else {}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as client:
            yield client


async def connect(settings: OrdersSettings, database: str | None = None) -> asyncpg.Connection:
    db = settings.database
    return await asyncpg.connect(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password.get_secret_value() or None,
        database=database or db.name,
    )


@asynccontextmanager
async def orders_locked(settings: OrdersSettings) -> AsyncIterator[asyncpg.Connection]:
    """Hold an exclusive lock on `orders`: every statement on it waits until the block ends."""
    connection = await connect(settings)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            yield connection
    finally:
        await connection.close()


async def wait_for_lock_waiters(connection: asyncpg.Connection, count: int) -> None:
    """Until `count` other sessions wait on a lock: the requests reached the database."""
    deadline = asyncio.get_running_loop().time() + 30
    query = """
        SELECT count(*) FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND datname = current_database()
    """
    while True:
        # Inside a transaction pg_stat_activity is a snapshot taken once: clear it each time.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        if await connection.fetchval(query) >= count:
            return
        assert asyncio.get_running_loop().time() < deadline, "the request never reached the lock"
        await asyncio.sleep(0.05)


def drop_database(settings: OrdersSettings) -> None:
    """Drop the settings' database, from outside any running event loop."""

    async def drop() -> None:
        connection = await connect(settings, "postgres")
        try:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{settings.database.name}" WITH (FORCE)'
            )
        finally:
            await connection.close()

    asyncio.run(drop())


type NewUow = Callable[[], OrdersUnitOfWork]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a free port, which a test may stop and start again."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.port = free_port()
        self.directory = directory
        self.persistent = persistent
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "yes",
                "--dir",
                str(self.directory),
                "--pidfile",
                str(self.directory / "redis.pid"),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            check=True,
        )
        # A PONG alone could be another server's, one that held the port first: ours wrote the
        # pid file and answers with its pid.
        deadline = time.monotonic() + 10
        while not self._ours():
            if time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on {self.port} did not start:\n{log}")
            time.sleep(0.05)

    def _ours(self) -> bool:
        pidfile = self.directory / "redis.pid"
        info = subprocess.run(
            ["redis-cli", "-p", str(self.port), "info", "server"], capture_output=True, check=False
        ).stdout.decode()
        pid = re.search(r"^process_id:(\d+)", info, re.MULTILINE)
        return pid is not None and pidfile.exists() and pidfile.read_text().strip() == pid[1]

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown"],
            check=False,
            capture_output=True,
        )
        self._wait(up=False)

    def _wait(self, *, up: bool) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answered = (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
                ).stdout.strip()
                == b"PONG"
            )
            if answered == up:
                return
            time.sleep(0.05)
        raise TimeoutError(f"redis on {self.port} did not {'start' if up else 'stop'}")


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free port, which a test may stop and start again.

    The server runs as the `postgres` user (it refuses root), in a directory that user owns."""

    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="orders-postgres-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self._as_postgres(
            "initdb", "-D", str(self.directory / "data"), "-U", "postgres", "--auth=trust"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        data = str(self.directory / "data")
        self._as_postgres("pg_ctl", "-D", data, "-o", options, "-l", f"{data}.log", "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [self.BIN / "pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            user="postgres" if os.geteuid() == 0 else None,
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    def _as_postgres(self, tool: str, *args: str) -> None:
        subprocess.run(
            [self.BIN / tool, *args],
            check=True,
            capture_output=True,
            user="postgres" if os.geteuid() == 0 else None,
            cwd=self.directory,
            timeout=120,
        )


class NatsServer:
    """A throwaway nats-server with JetStream on a free port; its store outlives a restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"nats://127.0.0.1:{self.port}"
        self.name = f"throwaway-{uuid.uuid4().hex}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self._process = subprocess.Popen(
            [
                binary,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-n",
                self.name,
                "-js",
                "-sd",
                str(self.directory / "store"),
                "-l",
                str(self.directory / "nats.log"),
            ]
        )
        deadline = time.monotonic() + 10
        # Answering with its own name: another server may hold the port.
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server on {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                return f'"server_name":"{self.name}"'.encode() in sock.makefile("rb").readline()
        except OSError:
            return False


def service_env(settings: OrdersSettings, **overrides: str) -> dict[str, str]:
    """The environment for an `orders` process using the test database and Redis."""
    return {
        **os.environ,
        "ORDERS_ENVIRONMENT": "test",
        "ORDERS_DATABASE__NAME": settings.database.name,
        "ORDERS_REDIS__URL": settings.redis.url.get_secret_value(),
        "ORDERS_BROKER__KIND": settings.broker.kind,
        "ORDERS_BROKER__NATS_URL": settings.broker.nats_url.get_secret_value(),
        "ORDERS_OUTBOX__METRICS_PORT": "0",
        "ORDERS_CONSUMER__METRICS_PORT": "0",
        "ORDERS_SERVER__SHUTDOWN_DELAY_SECONDS": "0",  # a test that wants the delay sets it
        **overrides,
    }


def start_command(settings: OrdersSettings, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`orders <args>` as its own process, as the image runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "orders", *args],
        env=service_env(settings, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_until_ready(
    base_url: str, process: subprocess.Popen[bytes], path: str = "/health/ready"
) -> None:
    """Until `path` answers 200; the process dying first fails the test with its output."""
    deadline = time.monotonic() + 120  # a bound for a loaded machine, not a speed goal
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        try:
            if httpx.get(f"{base_url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the process did not answer {path}")
