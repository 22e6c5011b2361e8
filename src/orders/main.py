"""The application factory: `create_app(settings)` builds a fresh app, nothing at import time."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import metadata

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client.multiprocess import mark_process_dead

from core import health
from core.errors import install_error_handlers
from core.hardening import RequestGuardMiddleware, SecurityHeadersMiddleware
from core.idempotency import install_replay_handler
from core.logging import configure_logging
from core.metrics import HttpMetrics, multiprocess
from core.middleware import AccessMiddleware, RequestContextMiddleware
from core.resources import open_resources
from core.security import BearerTokenMiddleware
from core.tracing import configure_tracing
from orders.clients import downstreams
from orders.events import published_events
from orders.routes import v1
from orders.settings import SERVICE, OrdersSettings


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    configure_logging(settings)
    tracer_provider = configure_tracing(settings)
    metrics = HttpMetrics()
    events = published_events(settings.events.type_prefix)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        async with open_resources(settings, events, metrics, downstreams(settings)) as resources:
            yield {"resources": resources}
        if multiprocess():  # this worker's live gauges leave the sums with it
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    docs = settings.docs_enabled
    app = FastAPI(
        title="Orders service",
        version=settings.service_version,
        summary=metadata(f"{SERVICE}-service")["Summary"],  # pyproject's description
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
    )
    # Added last is outermost: the request id is set before the access line is written, and
    # every refusal below it is logged, counted and carries the headers.
    http = settings.http
    # Innermost: a /v1 request without a valid token is refused before its body is read.
    app.add_middleware(BearerTokenMiddleware, prefixes=[v1.prefix + "/"])
    app.add_middleware(GZipMiddleware, minimum_size=http.gzip_minimum_bytes)
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=http.max_body_bytes,
        timeout_seconds=http.request_timeout_seconds,
    )
    if http.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=http.cors_origins,
            allow_credentials=http.cors_allow_credentials,
            allow_methods=["GET", "POST", "PATCH"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "Location", "X-Request-ID", "Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=http.hsts_seconds)
    app.add_middleware(AccessMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    install_replay_handler(app)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    # FastAPI stops a streamed body at the limit as it reads (413, rendered as a problem).
    app.include_router(v1, max_body_size=settings.http.max_body_bytes)
    # Outermost of all: the server span (continuing an incoming traceparent) spans everything.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider, excluded_urls="/health,/metrics"
    )
    return app
