"""Request context (a request id on every log line and response, a last-resort 500), and the
access log and HTTP metrics: one line and one observation per request."""

import re
import time
import uuid

import structlog
from fastapi.routing import iter_route_contexts
from opentelemetry import trace
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.context import request_id_var, subject_var
from core.errors import problem_response
from core.metrics import HttpMetrics

REQUEST_ID_HEADER = "x-request-id"
# Accept a caller's id only when it cannot smuggle anything into logs or headers.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = structlog.get_logger(__name__)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        subject_token = subject_var.set(None)  # authentication sets it, for this request only
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            log.exception("request.failed", method=scope["method"], path=scope["path"])
            trace.get_current_span().record_exception(error)  # the span ends as a 500 too
            if response_started:
                raise
            response = problem_response(scope, 500, "an unexpected error occurred")
            await response(scope, receive, send_with_id)
        finally:
            subject_var.reset(subject_token)
            request_id_var.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


# Probes and scrapes are counted, but logged only at DEBUG: they would drown the rest.
_QUIET_PREFIXES = ("/health", "/metrics")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class AccessMiddleware:
    """One `http.request` log line and one metrics observation per request, by route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Any token is a method to HTTP: only the standard ones become label values.
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = 500  # unless a response starts: an exception becomes the outer 500
        started = time.perf_counter()

        async def send_and_observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight.labels(method)
        in_flight.inc()
        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            in_flight.dec()
            self._observe(scope, method, status, time.perf_counter() - started)

    def _observe(self, scope: Scope, method: str, status: int, seconds: float) -> None:
        route = _route_template(scope, self._templates)
        self.metrics.requests.labels(method, route, f"{status // 100}xx").inc()
        self.metrics.duration.labels(method, route).observe(seconds)
        quiet = scope["path"].startswith(_QUIET_PREFIXES)
        (log.debug if quiet else log.info)(
            "http.request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            client=_client(scope),
        )


def _route_template(scope: Scope, templates: dict[int, str]) -> str:
    """The matched route's full template (`/v1/invoices/{invoice_id}`): bounded, unlike paths."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    if not templates:  # once per app: FastAPI knows each route's template with its prefixes
        templates.update(
            {
                id(c.original_route): c.path_format or ""
                for c in iter_route_contexts(scope["app"].routes)
            }
        )
    template: str = templates.get(id(route)) or getattr(route, "path", None) or "unmatched"
    return template


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None
