"""CloudEvents 1.0 envelope and the registry of event types: no schemaless JSON anywhere."""

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry import propagate
from pydantic import BaseModel, ConfigDict

SPEC_VERSION = "1.0"
JSON = "application/json"
MAX_EVENT_BYTES = 64 * 1024  # the CloudEvents size every broker binding must accept


class EventPayload(BaseModel):
    """An event's `data`: past tense, immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]  # "order.placed"; the type adds the prefix and version
    version: ClassVar[int] = 1
    topic: ClassVar[str]  # the stream (or Kafka topic) it is published to
    aggregate_type: ClassVar[str]


class EventTooLargeError(ValueError):
    pass


class UnknownEventTypeError(LookupError):
    pass


class EventRegistry:
    """Maps CloudEvents types to payload schemas, both ways."""

    def __init__(self, prefix: str, payloads: Iterable[type[EventPayload]]) -> None:
        self.prefix = prefix
        self._by_type = {self._type(payload): payload for payload in payloads}

    def _type(self, payload: type[EventPayload]) -> str:
        return f"{self.prefix}.{payload.name}.v{payload.version}"

    def type_of(self, payload: type[EventPayload]) -> str:
        event_type = self._type(payload)
        if self._by_type.get(event_type) is not payload:
            raise UnknownEventTypeError(payload.__name__)
        return event_type

    def payload_for(self, event_type: str) -> type[EventPayload]:
        try:
            return self._by_type[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type) from None

    def __iter__(self) -> Iterator[tuple[str, type[EventPayload]]]:
        return iter(sorted(self._by_type.items()))


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One event as it travels: the CloudEvents attributes plus our extensions."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    data: Mapping[str, Any]
    partitionkey: str
    sequence: str
    dataschema: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    datacontenttype: str = JSON
    specversion: str = SPEC_VERSION

    def to_fields(self) -> dict[str, str]:
        """Binary-mode fields, as Redis stream entries and message headers carry them."""
        fields = {
            name: value
            for name, value in (
                ("specversion", self.specversion),
                ("id", self.id),
                ("source", self.source),
                ("type", self.type),
                ("subject", self.subject),
                ("time", self.time),
                ("datacontenttype", self.datacontenttype),
                ("dataschema", self.dataschema),
                ("partitionkey", self.partitionkey),
                ("sequence", self.sequence),
                ("traceparent", self.traceparent),
                ("tracestate", self.tracestate),
            )
            if value is not None
        }
        fields["data"] = json.dumps(self.data, separators=(",", ":"))
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "CloudEvent":
        """Parse binary-mode fields; raises ValueError on anything not a valid event."""
        required = ("specversion", "id", "source", "type", "subject", "time", "data")
        missing = [name for name in required if not fields.get(name)]
        if missing:
            raise ValueError(f"missing attributes: {', '.join(missing)}")
        if fields["specversion"] != SPEC_VERSION:
            raise ValueError(f"unsupported specversion {fields['specversion']}")
        if dt.datetime.fromisoformat(fields["time"]).tzinfo is None:
            raise ValueError(f"time {fields['time']!r} has no UTC offset (RFC 3339)")
        data = json.loads(fields["data"])
        if not isinstance(data, dict):
            raise ValueError("data is not a JSON object")  # noqa: TRY004 - a decoding error
        return cls(
            id=fields["id"],
            source=fields["source"],
            type=fields["type"],
            subject=fields["subject"],
            time=fields["time"],
            data=data,
            partitionkey=fields.get("partitionkey", fields["subject"]),
            sequence=fields.get("sequence", ""),
            dataschema=fields.get("dataschema"),
            traceparent=fields.get("traceparent"),
            tracestate=fields.get("tracestate"),
            datacontenttype=fields.get("datacontenttype", JSON),
        )


def encode_sequence(version: int) -> str:
    """CloudEvents `sequence` compares as a string: zero-pad so "10" sorts after "9"."""
    return f"{version:020d}"


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def current_trace_context() -> tuple[str | None, str | None]:
    """The W3C `traceparent`/`tracestate` of the current span, when there is one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate")


def check_size(data: Mapping[str, Any]) -> None:
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise EventTooLargeError(f"event data is {size} bytes; the limit is {MAX_EVENT_BYTES}")
