"""A real customers service for the tests: a small ASGI app served by uvicorn on a free port."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import uvicorn
from starlette.types import Receive, Scope, Send

from tests.support import free_port


@dataclass
class CustomersService:
    """Answers `GET /v1/customers/{id}` from `customers`; `failures` 503s come first, and
    `delay` seconds pass before each answer. Every request is recorded."""

    customers: dict[str, dict[str, object]] = field(default_factory=dict)
    failures: int = 0
    delay: float = 0.0
    retry_after: str = "0"
    requests: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lookups(self) -> list[tuple[float, str, dict[str, str]]]:
        return [r for r in self.requests if r[1].startswith("/v1/customers/")]

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((time.monotonic(), scope["path"], headers))
        await asyncio.sleep(self.delay)
        status, body, extra = self._answer(scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def _answer(self, path: str) -> tuple[int, object, list[tuple[bytes, bytes]]]:
        if path == "/health":
            return 200, {"status": "ok"}, []
        if self.failures > 0:
            self.failures -= 1
            return 503, {"detail": "busy"}, [(b"retry-after", self.retry_after.encode())]
        customer = self.customers.get(path.rsplit("/", 1)[-1])
        if customer is None:
            return 404, {"detail": "no such customer"}, []
        return 200, customer, []


class Served(Protocol):
    port: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send, /) -> None: ...


@asynccontextmanager
async def serving[S: Served](service: S) -> AsyncIterator[S]:
    """Serve `service` (an ASGI app with a port) on 127.0.0.1 until the block ends."""
    config = uvicorn.Config(
        service, host="127.0.0.1", port=service.port, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield service
    finally:
        server.should_exit = True
        await task
