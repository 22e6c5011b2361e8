"""`orders` command line: the same commands run locally, in the image and in the tests."""

import argparse
import asyncio
from collections.abc import Sequence

import structlog
import uvicorn
from alembic import command
from alembic.config import Config

from core.database import ensure_database
from core.logging import configure_logging
from orders.settings import OrdersSettings

log = structlog.get_logger(__name__)


def migrate(settings: OrdersSettings, alembic_ini: str = "alembic.ini") -> None:
    """Create the database when missing, then upgrade it to the newest revision."""
    if asyncio.run(ensure_database(settings.database)):
        log.info("database.created", database=settings.database.name)
    config = Config(alembic_ini)
    config.attributes["url"] = settings.database.url()
    command.upgrade(config, "head")
    log.info("database.migrated", database=settings.database.name)


def serve(settings: OrdersSettings) -> None:
    uvicorn.run(
        "orders.main:create_app",
        factory=True,
        host=settings.server.host,
        port=settings.server.port,
        workers=settings.server.workers,
        log_config=None,  # core.logging owns the handlers
        timeout_graceful_shutdown=10,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="orders", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP API (ORDERS_SERVER__* settings)")
    migrate_parser = commands.add_parser("migrate", help="create the database, apply migrations")
    migrate_parser.add_argument("--alembic-ini", default="alembic.ini")
    args = parser.parse_args(argv)

    settings = OrdersSettings()
    configure_logging(settings)
    if args.command == "migrate":
        migrate(settings, args.alembic_ini)
    else:
        serve(settings)
