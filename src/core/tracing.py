"""OpenTelemetry tracing: one provider per process, configured by the standard OTEL_* variables.

Spans are always recorded (logs carry their trace and span ids); they leave the process only
when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT). Sampling
follows OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (default: parent-based, always on).
"""

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind

from core.settings import CoreSettings

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing(settings: CoreSettings) -> trace.TracerProvider:
    """Install the process's tracer provider once; later calls return the one installed."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": settings.service_version,
            "deployment.environment": str(settings.environment),
        }
    )
    provider = TracerProvider(resource=resource)
    if any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,  # imported only when used: it pulls in protobuf
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Every engine created from now on gets a span per statement; every Redis command and
    # every outgoing httpx call one too (with the trace context sent along).
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def context_from(carrier: Mapping[str, str | None]) -> context.Context:
    """The trace context a message carries (`traceparent`, `tracestate`), if any."""
    return propagate.extract({k: v for k, v in carrier.items() if v is not None})


def links_to(carriers: Sequence[Mapping[str, str | None]]) -> list[Link]:
    """Links to the traces that produced a batch of messages."""
    links = []
    for carrier in carriers:
        span_context = trace.get_current_span(context_from(carrier)).get_span_context()
        if span_context.is_valid:
            links.append(Link(span_context))
    return links


@contextmanager
def consuming(name: str, carrier: Mapping[str, str | None], **attributes: str) -> Iterator[Span]:
    """A CONSUMER span continuing the trace the message carries, current while inside."""
    with tracer("core.consumer").start_as_current_span(
        name, context=context_from(carrier), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span
