"""The event catalogue: JSON Schema per event type and an AsyncAPI 3.0 document, from the
registries, plus the check that a published schema only ever changes compatibly."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.json_schema import models_json_schema

from core.events import EventRegistry

# The CloudEvents attributes every message carries, as entry fields or headers.
_ENVELOPE = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "description": "Unique per event; consumers deduplicate on it."},
        "source": {"type": "string", "format": "uri-reference"},
        "type": {"type": "string"},
        "subject": {"type": "string", "description": "<aggregate type>/<aggregate id>"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "dataschema": {"type": "string", "format": "uri"},
        "partitionkey": {"type": "string", "description": "The aggregate id: order is per key."},
        "sequence": {
            "type": "string",
            "description": "The aggregate's version, zero-padded to 20 digits.",
        },
        "traceparent": {"type": "string", "description": "W3C trace context of the origin."},
        "tracestate": {"type": "string"},
    },
}


@dataclass(frozen=True, slots=True)
class Channel:
    registry: EventRegistry
    action: Literal["send", "receive"]


def event_schema(registry: EventRegistry, event_type: str, schema_id: str) -> dict[str, Any]:
    """The JSON Schema of one event type's `data` as it is on the wire, self-contained."""
    schema = registry.payload_for(event_type).model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}


def asyncapi(title: str, version: str, channels: Sequence[Channel]) -> dict[str, Any]:
    payloads = [
        (payload, "serialization") for registry in _registries(channels) for _, payload in registry
    ]
    names, definitions = models_json_schema(
        payloads,  # type: ignore[arg-type]
        ref_template="#/components/schemas/{model}",
    )
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version},
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": definitions.get("$defs", {})},
    }
    for channel in channels:
        for event_type, payload in channel.registry:
            topic = payload.topic
            message_ref = {"$ref": f"#/components/messages/{event_type}"}
            document["channels"].setdefault(topic, {"address": topic, "messages": {}})
            document["channels"][topic]["messages"][event_type] = message_ref
            operation = document["operations"].setdefault(
                f"{channel.action}-{topic}",
                {
                    "action": channel.action,
                    "channel": {"$ref": f"#/channels/{topic}"},
                    "messages": [],
                },
            )
            operation["messages"].append({"$ref": f"#/channels/{topic}/messages/{event_type}"})
            document["components"]["messages"][event_type] = {
                "name": event_type,
                "title": payload.__name__,
                "summary": (payload.__doc__ or "").strip().split("\n")[0] or None,
                "contentType": "application/json",
                "headers": _ENVELOPE,
                "payload": names[(payload, "serialization")],
            }
    cleaned: dict[str, Any] = _without_none(document)
    return cleaned


def compatibility_problems(published: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Why `current` would break consumers of `published`; empty when it would not.

    Compatible: new optional fields, looser descriptions. Breaking: a field removed, retyped,
    or newly required.
    """
    problems = []
    old_fields, new_fields = published.get("properties", {}), current.get("properties", {})
    for name, old in old_fields.items():
        new = new_fields.get(name)
        if new is None:
            problems.append(f"field {name!r} was removed")
        elif _shape(old) != _shape(new):
            problems.append(f"field {name!r} changed from {_shape(old)} to {_shape(new)}")
    newly_required = set(current.get("required", [])) - set(published.get("required", []))
    problems += [f"field {name!r} is newly required" for name in sorted(newly_required)]
    new_definitions = current.get("$defs", {})
    for name, old_definition in published.get("$defs", {}).items():
        if name not in new_definitions:
            problems.append(f"definition {name!r} was removed")
            continue
        problems += [
            f"{name}: {problem}"
            for problem in compatibility_problems(old_definition, new_definitions[name])
        ]
    return problems


def _shape(schema: Mapping[str, Any]) -> object:
    keys = ("type", "$ref", "anyOf", "items", "enum", "const", "format", "pattern")
    return {key: schema[key] for key in keys if key in schema}


def _registries(channels: Sequence[Channel]) -> list[EventRegistry]:
    return [channel.registry for channel in channels]


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value
