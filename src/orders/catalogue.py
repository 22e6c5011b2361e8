"""The orders service's event catalogue, as committed under docs/events/."""

import json
from pathlib import Path
from typing import Any

from core.catalogue import Channel, asyncapi, compatibility_problems, event_schema
from orders.consumers import RECEIVED_EVENTS
from orders.events import published_events
from orders.settings import OrdersSettings

CATALOGUE_DIR = Path("docs/events")


def catalogue(settings: OrdersSettings) -> dict[Path, dict[str, Any]]:
    """Every catalogue file by path: one schema per event type we publish, and AsyncAPI."""
    published = published_events(settings.events.type_prefix)
    files: dict[Path, dict[str, Any]] = {
        Path("schemas") / f"{event_type}.json": event_schema(
            published, event_type, settings.events.schema_base + event_type
        )
        for event_type, _ in published
    }
    channels = [
        Channel(published, "send"),
        *(Channel(received, "receive") for received in RECEIVED_EVENTS),
    ]
    files[Path("asyncapi.json")] = asyncapi(
        f"{settings.service_name} events", settings.service_version, channels
    )
    return files


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_catalogue(settings: OrdersSettings, directory: Path = CATALOGUE_DIR) -> list[str]:
    """Write the catalogue; refuses (and returns why) when a published schema would break."""
    files = catalogue(settings)
    problems = [
        f"{path.name}: {problem}"
        for path, document in files.items()
        if path.parent.name == "schemas" and (directory / path).exists()
        for problem in compatibility_problems(json.loads((directory / path).read_text()), document)
    ]
    if problems:
        return problems
    for path, document in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(render(document))
    return []
