"""HTTP benchmark: the template against a hand-written floor, under the same load and server.

On the local PostgreSQL (a database of its own, 10,000 orders of two lines) and a throwaway
redis-server, two API processes run side by side, one uvicorn worker each with the same pool:
- the floor (benchmarks/floor.py): Starlette, a raw asyncpg pool, orjson;
- the template (`orders serve`) as production runs it: environment production, RS256 bearer
  tokens verified against a JWKS (benchmarks/identity.py), rate limits counted in Redis (set high
  enough never to refuse), JSON logs at INFO (to a file), metrics, tracing sampled at 10%
  (parentbased_traceidratio) with no exporter.
wrk (benchmarks/wrk/orders.lua) loads one endpoint at a time with 64 connections: per endpoint,
several rounds alternate which server goes first, each run preceded by a discarded warm-up.
Then the default test suite is timed, and the results go to docs/performance.md.
"""

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import subprocess
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
from pydantic import SecretStr
from tests.support import RedisServer, connect, drop_database, free_port, service_env

from benchmarks.identity import IdentityProvider, identity_provider
from benchmarks.load import CONNECTIONS, Run, Server, wrk_command
from benchmarks.report import Measurements, Setup, render, write_section
from orders.cli import migrate
from orders.settings import OrdersSettings

SEED_ORDERS, READ_IDS = 10_000, 1_000
POOL_SIZE = 10
ENDPOINTS = ("read", "list", "create")
DOC = Path("docs/performance.md")
# Production's tracing as docs/observability.md documents it; no exporter endpoint.
TRACING = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
# Every request is counted against the limits (a Redis round trip), none is refused.
UNREACHED_LIMITS = {
    "ORDERS_RATE_LIMIT__READS": "1000000000",
    "ORDERS_RATE_LIMIT__WRITES": "1000000000",
}


async def seed(settings: OrdersSettings) -> tuple[list[uuid.UUID], str]:
    """Orders of two lines each, a second apart; the ids the reads cycle over, and PG's version."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    customers = [uuid.uuid4() for _ in range(100)]
    orders, lines = [], []
    for n in range(SEED_ORDERS):
        order_id, created = uuid.uuid4(), start + dt.timedelta(seconds=n)
        orders.append(
            (order_id, customers[n % 100], "pending", "EUR", "seeded", 1, created, created)
        )
        lines.append((uuid.uuid4(), order_id, 0, "SKU-1001", 2, Decimal("19.99")))
        lines.append((uuid.uuid4(), order_id, 1, "SKU-2002", 1, Decimal("5.00")))
    connection = await connect(settings)
    try:
        await connection.copy_records_to_table(
            "orders",
            records=orders,
            columns=[
                "id",
                "customer_id",
                "status",
                "currency",
                "note",
                "version_id",
                "created_at",
                "updated_at",
            ],
        )
        await connection.copy_records_to_table(
            "order_lines",
            records=lines,
            columns=["id", "order_id", "position", "sku", "quantity", "unit_price"],
        )
        await connection.execute("VACUUM ANALYZE")
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return [row[0] for row in orders[:: SEED_ORDERS // READ_IDS]], str(version)


def environment(settings: OrdersSettings, **overrides: str) -> dict[str, str]:
    """One server's environment: same database, Redis, worker count and pool; no span export."""
    env = service_env(
        settings,
        ORDERS_SERVER__PORT=str(free_port()),
        ORDERS_SERVER__WORKERS="1",
        ORDERS_DATABASE__POOL_SIZE=str(POOL_SIZE),
        **overrides,
    )
    return {k: v for k, v in env.items() if not k.startswith("OTEL_EXPORTER_")}


def start_servers(
    settings: OrdersSettings,
    scratch: Path,
    ids: list[uuid.UUID],
    idp: IdentityProvider,
    variant: dict[str, str],
) -> list[Server]:
    """The template, then the floor: one at a time, so neither start-up slows the other's."""
    template = Server(
        "template",
        "orders",
        environment(
            settings,
            ORDERS_ENVIRONMENT="production",
            ORDERS_LOGGING__LEVEL="INFO",
            **idp.settings(),
            **UNREACHED_LIMITS,
            **TRACING,
            **variant,
        ),
        scratch / "template.log",
    )
    servers = [template]
    try:
        template.wait_ready("/health/ready")
        floor = Server("floor", "benchmarks.floor", environment(settings), scratch / "floor.log")
        servers.append(floor)
        floor.wait_ready(f"/v1/orders/{ids[0]}")
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def same_json(floor: Server, template: Server, order_id: uuid.UUID, token: str) -> None:
    """Both servers answer the benchmark's reads with the same JSON, before any load."""
    headers = {"Authorization": f"Bearer {token}"}
    for path in (f"/v1/orders/{order_id}", "/v1/orders?page=1&per_page=20"):
        answers = [
            httpx.get(server.url + path, headers=headers).json() for server in (floor, template)
        ]
        if answers[0] != answers[1]:
            raise RuntimeError(f"floor and template disagree on {path}: {answers}")


def rounds(  # noqa: PLR0913 - the run's parameters, each once
    floor: Server,
    template: Server,
    ids_file: Path,
    *,
    token: str,
    count: int,
    seconds: int,
    warm_up: int,
) -> dict[str, dict[str, list[Run]]]:
    runs: dict[str, dict[str, list[Run]]] = {e: {"floor": [], "template": []} for e in ENDPOINTS}
    # Endpoint by endpoint: the creates come last, so the reads see the seeded table only.
    for endpoint in ENDPOINTS:
        args = [endpoint, str(ids_file)] if endpoint == "read" else [endpoint]
        for number in range(count):
            servers = (floor, template) if number % 2 == 0 else (template, floor)
            for server in servers:
                server.load(warm_up, *args, token=token)
                run = server.load(seconds, *args, token=token)
                runs[endpoint][server.name].append(run)
                print(  # noqa: T201 - progress
                    f"{endpoint:6} round {number + 1} {server.name:8} {run.rate:7.0f} req/s"
                    f"  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms"
                    f"  {run.cpu_ms_per_request:5.2f} ms CPU/req  {run.failed} failed",
                    flush=True,
                )
    return runs


def time_suite() -> tuple[float, str]:
    """Wall time of the default suite (`make test-fast`), and its summary line."""
    started = time.perf_counter()
    result = subprocess.run(
        ["make", "--no-print-directory", "test-fast"],  # noqa: S607 - make from PATH, as users run it
        env={**os.environ, "PYTEST_ADDOPTS": "-q -p no:cacheprovider"},
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
    return elapsed, summary.strip("= ")


def machine(postgres: str) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    release = dict(
        line.split("=", 1)
        for line in Path("/etc/os-release").read_text().splitlines()
        if "=" in line
    )
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    version = wrk.stdout.split(" [")[0].strip() or "wrk"
    return (
        f"{os.cpu_count()} vCPU {cpu}, {memory:.0f} GiB RAM, "
        f"{release.get('PRETTY_NAME', '?').strip('"')} (kernel {platform.release()}); "
        f"Python {platform.python_version()}, PostgreSQL {postgres}, "
        f"{version}"
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="measured seconds per run")
    parser.add_argument("--warm-up", type=int, default=2, help="discarded seconds before each")
    parser.add_argument("--no-suite", action="store_true", help="skip timing the test suite")
    parser.add_argument("--no-write", action="store_true", help=f"print, leave {DOC} alone")
    parser.add_argument(
        "--template-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the template only, to measure a variant (repeatable)",
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per readiness poll
    load_average = os.getloadavg()
    base = OrdersSettings()
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        redis = RedisServer(scratch)
        redis.start()
        database = base.database.model_copy(update={"name": f"orders_bench_{uuid.uuid4().hex[:6]}"})
        redis_settings = base.redis.model_copy(update={"url": SecretStr(redis.url)})
        settings = base.model_copy(update={"database": database, "redis": redis_settings})
        migrate(settings)
        servers: list[Server] = []
        try:
            ids, postgres = asyncio.run(seed(settings))
            ids_file = scratch / "ids.txt"
            ids_file.write_text("".join(f"{i}\n" for i in ids))
            with identity_provider() as idp:
                variant = dict(item.split("=", 1) for item in args.template_env)
                servers = start_servers(settings, scratch, ids, idp, variant)
                template, floor = servers
                same_json(floor, template, ids[0], idp.token)
                runs = rounds(
                    floor,
                    template,
                    ids_file,
                    token=idp.token,
                    count=args.rounds,
                    seconds=args.seconds,
                    warm_up=args.warm_up,
                )
            rss = {server.name: server.rss_mb() for server in servers}
            log_lines = template.log.read_text().count('"event": "http.request"')
        finally:
            for server in servers:
                server.stop()
            drop_database(settings)
            redis.stop()
    suite = None if args.no_suite else time_suite()
    setup = Setup(
        machine=machine(postgres),
        load_average=load_average,
        commit=subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - whichever git is at hand
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        wrk=" ".join(wrk_command("http://127.0.0.1:PORT", args.seconds, "MODE", "[IDS_FILE]")),
        rounds=args.rounds,
        seconds=args.seconds,
        warm_up=args.warm_up,
        connections=CONNECTIONS,
        pool_size=POOL_SIZE,
        seed_orders=SEED_ORDERS,
        variant=tuple(args.template_env),
    )
    measured = Measurements(
        runs=runs,
        rss_mb=rss,
        ready_seconds={s.name: s.ready_seconds for s in servers},
        access_log_lines=log_lines,
        suite=suite,
    )
    table = render(setup, measured)
    print(table)  # noqa: T201
    if not args.no_write:
        write_section(DOC, table)


if __name__ == "__main__":
    main()
