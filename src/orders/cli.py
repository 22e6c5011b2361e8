"""`orders` command line: the same commands run locally, in the image and in the tests."""

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config

from core.brokers import open_dead_letters
from core.database import build_engine, ensure_database
from core.logging import configure_logging
from core.metrics import MULTIPROCESS_DIR
from core.outbox.dead import (
    discard_dead_event,
    list_dead_events,
    replay_dead_event,
    show_dead_event,
)
from core.security import declared_scopes
from core.server import ServerConfig, run_server
from core.tokens import mint_token
from orders.catalogue import write_catalogue
from orders.consumer import run_consumer
from orders.consumers import consumed_streams
from orders.routes import v1
from orders.settings import OrdersSettings
from orders.worker import run_publisher

log = structlog.get_logger(__name__)

# After SIGTERM the server stops accepting and lets requests in flight finish for this long;
# deploy/k8s's terminationGracePeriodSeconds leaves room for it.
GRACEFUL_SHUTDOWN_SECONDS = 10


def migrate(settings: OrdersSettings, alembic_ini: str = "alembic.ini") -> None:
    """Create the database when missing, then upgrade it to the newest revision."""
    if asyncio.run(ensure_database(settings.database)):
        log.info("database.created", database=settings.database.name)
    config = Config(alembic_ini)
    config.attributes["url"] = settings.database.url()
    command.upgrade(config, "head")
    log.info("database.migrated", database=settings.database.name)


def serve(settings: OrdersSettings, app: str = "orders.main:create_app") -> None:
    """Run `app` (an application factory) under the server settings; the benchmark's floor too."""
    if settings.server.workers > 1:
        _share_metrics_between_workers()
    config = ServerConfig(
        app,
        factory=True,
        # uvloop and httptools (dependencies wherever they build): a cheaper event loop and
        # HTTP parser than asyncio's and h11, chosen explicitly so a missing one fails loudly.
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        log_config=None,  # core.logging owns the handlers
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # Slow or too many clients are bounded: see core.server.
        header_timeout_seconds=settings.server.header_timeout_seconds,
        timeout_keep_alive=settings.server.keep_alive_timeout_seconds,
        limit_concurrency=settings.server.limit_concurrency,
        # X-Forwarded-For/-Proto count only from the proxies named in the settings.
        proxy_headers=bool(settings.http.trusted_proxies),
        forwarded_allow_ips=",".join(settings.http.trusted_proxies) or None,
    )
    run_server(config)


def _share_metrics_between_workers() -> None:
    """Every worker writes its metrics under one directory, which /metrics adds up."""
    directory = Path(os.environ.get(MULTIPROCESS_DIR) or tempfile.mkdtemp(prefix="orders-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):  # a previous run's counts would be added in
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(directory)


async def dead_events(settings: OrdersSettings, action: str, event_id: str | None) -> Any:
    engine = build_engine(settings.database)
    try:
        if action == "list":
            return await list_dead_events(engine)
        target = uuid.UUID(_required(event_id))
        if action == "show":
            return await show_dead_event(engine, target)
        done = await (replay_dead_event if action == "replay" else discard_dead_event)(
            engine, target
        )
        return {"event_id": str(target), action: done}
    finally:
        await engine.dispose()


async def dead_letters(
    settings: OrdersSettings, action: str, entry_id: str | None, stream: str
) -> Any:
    async with open_dead_letters(settings) as letters:
        if action == "list":
            return await letters.entries(stream)
        if action == "show":
            return await letters.entry(stream, _required(entry_id))
        new_id = await letters.replay(stream, _required(entry_id))
        return {"entry_id": entry_id, "replayed_as": new_id}


def development_token(
    settings: OrdersSettings, subject: str, scopes: list[str] | None, ttl_seconds: int
) -> str:
    """A token the local server accepts, for curl and the README walkthrough."""
    if not settings.is_development or settings.auth.jwks_url is not None:
        raise SystemExit("tokens come from the identity provider here: `orders token` is for dev")
    scopes = scopes or declared_scopes(v1.routes)
    return mint_token(settings.auth, subject, scopes, ttl=dt.timedelta(seconds=ttl_seconds))


def _default_stream(settings: OrdersSettings) -> str:
    streams = consumed_streams(settings)
    if not streams:
        raise SystemExit("the consumer reads no stream yet: name one with --stream")
    return streams[0]


def _required(value: str | None) -> str:
    if value is None:
        raise SystemExit("this action needs an id")
    return value


_ANSWERING_COMMANDS = {"dead-events", "dead-letters", "token"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orders", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP API (ORDERS_SERVER__* settings)")
    migrate_parser = commands.add_parser("migrate", help="create the database, apply migrations")
    migrate_parser.add_argument("--alembic-ini", default="alembic.ini")
    commands.add_parser("publish", help="run the outbox publisher (ORDERS_OUTBOX__* settings)")
    commands.add_parser("consume", help="run the event consumer (ORDERS_CONSUMER__*)")
    events = commands.add_parser("dead-events", help="events the publisher gave up on")
    events.add_argument("action", choices=["list", "show", "replay", "discard"])
    events.add_argument("event_id", nargs="?")
    letters = commands.add_parser("dead-letters", help="messages the consumer gave up on")
    letters.add_argument("action", choices=["list", "show", "replay"])
    letters.add_argument("entry_id", nargs="?")
    letters.add_argument("--stream", help="the consumed stream (default: the first one read)")
    commands.add_parser("catalogue", help="write docs/events: AsyncAPI and the event schemas")
    token = commands.add_parser(
        "token", help="mint a development token (HS256, not for production)"
    )
    token.add_argument("--subject", default="developer", help="the token's `sub`")
    token.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        help="repeatable (default: every scope the API asks for)",
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = OrdersSettings()
    configure_logging(settings, to_stderr=args.command in _ANSWERING_COMMANDS)
    match args.command:
        case "migrate":
            migrate(settings, args.alembic_ini)
        case "serve":
            serve(settings)
        case "publish":
            asyncio.run(run_publisher(settings))
        case "consume":
            asyncio.run(run_consumer(settings))
        case "dead-events":
            _print(asyncio.run(dead_events(settings, args.action, args.event_id)))
        case "dead-letters":
            stream = args.stream or _default_stream(settings)
            _print(asyncio.run(dead_letters(settings, args.action, args.entry_id, stream)))
        case "token":
            print(development_token(settings, args.subject, args.scopes, args.ttl))  # noqa: T201
        case "catalogue":
            problems = write_catalogue(settings)
            if problems:
                raise SystemExit(
                    "published event schemas would break; add a new version instead:\n  "
                    + "\n  ".join(problems)
                )


def _print(result: object) -> None:
    print(json.dumps(result, indent=2, default=str))  # noqa: T201 - the command's output
