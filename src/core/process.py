"""What every long-running worker process shares: signals, a metrics endpoint, NOTIFY wake-ups."""

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, start_http_server

from core.settings import DatabaseSettings

log = structlog.get_logger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask the loop to finish its current work and return."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> None:
    if port:
        start_http_server(port, addr=host, registry=registry)
        log.info("metrics.serving", host=host, port=port)


async def listen_for_wakeups(
    settings: DatabaseSettings, channel: str, wake: asyncio.Event, stop: asyncio.Event
) -> None:
    """LISTEN on `channel` and set `wake` on each NOTIFY; reconnect when the connection drops.

    Only a hint: a lost connection sets `wake` too, so the caller polls at once.
    """
    while not stop.is_set():
        lost = asyncio.Event()
        try:
            connection = await asyncpg.connect(
                host=settings.host,
                port=settings.port,
                user=settings.user,
                password=settings.password.get_secret_value() or None,
                database=settings.name,
            )
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("outbox.listener_unavailable", error=str(error))
        else:
            await connection.add_listener(channel, lambda *_: wake.set())
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            log.info("outbox.listening", channel=channel)
            with contextlib.suppress(asyncio.CancelledError):
                await _first(stop.wait(), lost.wait())
            with contextlib.suppress(Exception):
                await connection.close()
        wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _first(*awaitables: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
