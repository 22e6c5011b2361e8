"""What every long-running process shares: signals, a metrics endpoint, NOTIFY wake-ups."""

import asyncio
import contextlib
import signal
import threading
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, start_http_server

from core.settings import DatabaseSettings

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT ask the worker to finish its current work and return."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def drain_before_stopping(delay_seconds: float, draining: asyncio.Event) -> Iterator[None]:
    """While inside, SIGTERM first sets `draining` and reaches the server's own handler only
    `delay_seconds` later: readiness answers 503 while requests are still served, so load
    balancers stop sending before the server stops accepting. A second SIGTERM does not wait.

    Entered inside the server (an app's lifespan), whose SIGTERM handler it wraps; outside one
    (no Python handler), or off the main thread, it does nothing."""
    server_handler = signal.getsignal(signal.SIGTERM)
    if not delay_seconds or not callable(server_handler):
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []

    def stop(frame: FrameType | None = None) -> None:
        for timer in timers:
            timer.cancel()
        server_handler(signal.SIGTERM, frame)

    def start_draining() -> None:
        draining.set()
        log.info("server.draining", delay_seconds=delay_seconds)
        timers.append(loop.call_later(delay_seconds, stop))

    def on_sigterm(_: int, frame: FrameType | None) -> None:
        if draining.is_set():
            stop(frame)
        else:  # from a signal handler, only the thread-safe call may touch the loop
            loop.call_soon_threadsafe(start_draining)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        for timer in timers:
            timer.cancel()
        signal.signal(signal.SIGTERM, server_handler)


@contextlib.contextmanager
def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> Iterator[None]:
    """Serve `registry` at http://host:port/metrics while inside; port 0 serves nothing."""
    if not port:
        yield
        return
    server, thread = start_http_server(port, addr=host, registry=registry)
    log.info("metrics.serving", host=host, port=port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def listen_for_wakeups(
    settings: DatabaseSettings, channel: str, wake: asyncio.Event, stop: asyncio.Event
) -> None:
    """LISTEN on `channel` and set `wake` on each NOTIFY; reconnect when the connection drops.

    Only a hint: a lost connection sets `wake` too, so the caller polls at once.
    """
    while not stop.is_set():
        lost = asyncio.Event()
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(
                host=settings.host,
                port=settings.port,
                user=settings.user,
                password=settings.password.get_secret_value() or None,
                database=settings.name,
            )
            await connection.add_listener(channel, lambda *_: wake.set())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("outbox.listener_unavailable", error=str(error))
            if connection is not None:
                connection.terminate()
        else:
            connection.add_termination_listener(lambda _, lost=lost: lost.set())
            log.info("outbox.listening", channel=channel)
            wake.set()  # catch up on whatever committed while nobody listened
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
