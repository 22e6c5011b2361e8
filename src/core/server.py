"""The HTTP server: uvicorn, with a bound on slow clients and on the work taken on at once.

uvicorn bounds idle keep-alive connections and, with `limit_concurrency`, the connections and
requests in flight (503 past it), but not how long a client may take to send its headers: one
that sends a byte now and then (slowloris) holds a connection for ever. `HeaderTimeoutProtocol`
closes a connection whose request headers are not complete in time.
"""

import asyncio
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

# The exit status `uvicorn.run` gives when the server did not start.
STARTUP_FAILURE = 3


class ServerConfig(uvicorn.Config):
    """uvicorn's config and the header timeout; pickled to every worker process with it."""

    def __init__(self, app: str, *, header_timeout_seconds: float, **options: Any) -> None:
        super().__init__(app, http=HeaderTimeoutProtocol, **options)
        self.header_timeout_seconds = header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools' protocol, closing a connection whose request headers take too long."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_headers()  # the next request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._header_timer is None:
            seconds = getattr(self.config, "header_timeout_seconds", 10.0)
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()  # no answer: the request never arrived


def run_server(config: ServerConfig) -> None:
    """What `uvicorn.run` does with an application factory, on our config."""
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
