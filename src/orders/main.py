"""The application factory: `create_app(settings)` builds a fresh app, nothing at import time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from core import health
from core.errors import install_error_handlers
from core.logging import configure_logging
from core.metrics import HttpMetrics
from core.middleware import AccessMiddleware, RequestContextMiddleware
from core.resources import open_resources
from core.tracing import configure_tracing
from orders.events import order_events
from orders.routes import v1
from orders.settings import OrdersSettings


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    configure_logging(settings)
    tracer_provider = configure_tracing(settings)
    metrics = HttpMetrics()
    events = order_events(settings.events.type_prefix)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, object]]:
        downstreams = {}
        if settings.customers.base_url is not None:
            downstreams["customers"] = settings.customers.base_url + settings.customers.health_path
        async with open_resources(settings, events, metrics, downstreams) as resources:
            yield {"resources": resources}

    docs = settings.docs_enabled
    app = FastAPI(
        title="Orders service",
        version=settings.service_version,
        summary="Places, changes, confirms and cancels orders.",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
    )
    # Added last is outermost: the request id is set before the access line is written.
    app.add_middleware(AccessMiddleware, metrics=metrics)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    app.include_router(v1)
    # Outermost of all: the server span (continuing an incoming traceparent) spans everything.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracer_provider, excluded_urls="/health,/metrics"
    )
    return app
