"""The one place logging is configured: structlog over the standard library, JSON by default.

Every record, ours or a library's (uvicorn, SQLAlchemy, alembic), becomes one JSON object per
line with the service, the request id and the current trace and span ids; secrets are masked.
"""

import functools
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from core.context import request_id_var, subject_var
from core.settings import CoreSettings

MASK = "***"
# Any key containing one of these (case-insensitive) is masked, at any depth.
SENSITIVE_KEYS = ("password", "token", "secret", "authorization", "cookie", "api_key", "apikey")

_CALLSITE = structlog.processors.CallsiteParameterAdder(
    {
        structlog.processors.CallsiteParameter.MODULE,
        structlog.processors.CallsiteParameter.FUNC_NAME,
        structlog.processors.CallsiteParameter.LINENO,
    }
)


def _add_request(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
        subject = subject_var.get()
        if subject is not None:
            event_dict.setdefault("subject", subject)
    return event_dict


def _add_trace(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = format(span_context.trace_id, "032x")
        event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict


def _rename_callsite(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if "func_name" in event_dict:
        event_dict["function"] = event_dict.pop("func_name")
    if "lineno" in event_dict:
        event_dict["line"] = event_dict.pop("lineno")
    return event_dict


def masker(keys: Iterable[str]) -> Processor:
    """A processor that replaces the values of sensitive keys, also inside nested dicts."""
    pattern = re.compile("|".join(re.escape(_normal(key)) for key in keys))

    # Every line passes here: a key's verdict is cached, and plain values are not looked into.
    @functools.lru_cache(maxsize=4096)
    def sensitive(key: str) -> bool:
        return pattern.search(_normal(key)) is not None

    def mask(value: Any) -> Any:
        if type(value) in _PLAIN:
            return value
        if isinstance(value, Mapping):
            return {
                k: MASK if sensitive(str(k)) else v if type(v) in _PLAIN else mask(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            # Header lists, as ASGI and httpx keep them: [("authorization", "Bearer ...")]
            return [
                (item[0], MASK) if _is_pair(item) and sensitive(str(item[0])) else mask(item)
                for item in value
            ]
        return value

    def processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        masked: EventDict = mask(event_dict)
        return masked

    return processor


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _normal(key: str) -> str:
    return key.lower().replace("-", "_")


def _is_pair(item: object) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2  # noqa: PLR2004 - a (key, value)


class _StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stdout` is at the time, so redirections and captures see it."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _: object) -> None:
        pass


class _StderrHandler(_StdoutHandler):
    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def configure_logging(settings: CoreSettings, *, to_stderr: bool = False) -> None:
    """Route structlog and stdlib records through one renderer.

    Services log to stdout; commands whose stdout is their answer log to stderr.
    """
    service = {
        "service": settings.service_name,
        "version": settings.service_version,
        "environment": str(settings.environment),
    }

    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.update(service)
        return event_dict

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _CALLSITE,
        _rename_callsite,
        add_service,
        _add_request,
        _add_trace,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        masker([*SENSITIVE_KEYS, *settings.logging.extra_sensitive_keys]),
    ]
    renderer: Processor
    if settings.logging.format == "console":
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
        # One structured `exception` field; never frame locals, which may hold secrets.
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        shared.append(structlog.processors.ExceptionRenderer(transformer))

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a second configuration (another app, a test) reaches every logger.
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler() if to_stderr else _StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    # SQL statements appear only when the level is DEBUG.
    sql_level = logging.INFO if settings.logging.level == "DEBUG" else logging.WARNING
    logging.getLogger("sqlalchemy.engine").setLevel(sql_level)
    # uvicorn installs its own handlers; its records flow through ours instead. Its access
    # log is replaced by core.middleware's `http.request` line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
