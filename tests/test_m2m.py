"""The m2m facts and the generated references agree with the code."""

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

import reference
from core.consumer import dead_letter_stream as dead_letter_stream_on_redis
from core.database import Base
from core.jetstream import dead_letter_stream, dead_letter_subject, exhausted_stream, stream_for
from orders.cli import _parser
from orders.consumers import RECEIVED_EVENTS, consumed_streams
from orders.events import published_events
from orders.main import create_app
from orders.settings import SERVICE, OrdersSettings

M2M = Path("m2m")


def load(name: str) -> Any:
    return json.loads((M2M / name).read_text())


def test_the_generated_references_are_current() -> None:
    stale = [str(path) for path, text in reference.files().items() if path.read_text() != text]
    assert stale == [], "run `make reference` and commit the result"


def test_every_table_is_described() -> None:
    described = {row["table"] for row in load("tables.json")}
    assert described == {*Base.metadata.tables, "alembic_version"}
    assert all(row["purpose"] for row in load("tables.json"))


def test_every_event_type_is_listed_with_an_existing_schema() -> None:
    events = load("events.json")
    published = {row["type"] for row in events["published"]}
    prefix = OrdersSettings(_env_file=None).events.type_prefix
    assert published == {event_type for event_type, _ in published_events(prefix)}
    assert all(Path(row["schema"]).exists() for row in events["published"])
    received = {event_type for registry in RECEIVED_EVENTS for event_type, _ in registry}
    assert {row["type"] for row in events["consumed"]} == received
    streams = {row["stream"] for row in load("streams.json")}
    assert {row["stream"] for row in events["published"] + events["consumed"]} <= streams


def test_every_http_operation_is_listed() -> None:
    listed = {
        (row["method"], row["path"])
        for row in load("http.json")
        if row["path"].startswith(("/v1", "/health"))
    }
    contexts = iter_route_contexts(create_app().routes)
    routes = {
        (method, context.path_format)
        for context in contexts
        if context.path_format and context.path_format.startswith(("/v1", "/health"))
        for method in context.methods or ()
    }
    assert routes == listed
    assert ("GET", "/health/ready") in routes


def test_the_commands_exist() -> None:
    service = load("service.json")
    targets = set(re.findall(r"^([a-z-]+):", Path("Makefile").read_text(), flags=re.MULTILINE))
    for command in service["commands"].values():
        if command.startswith("make "):
            assert command.split()[1] in targets, command
    subcommands = set(re.findall(r"^    ([a-z-]+) ", _parser().format_help(), flags=re.MULTILINE))
    for process in service["processes"]:
        assert process["command"].split()[1] in subcommands, process


def test_the_nats_names_are_those_the_adapter_uses() -> None:
    rows = {row["stream"]: row for row in load("streams.json")}
    settings = OrdersSettings(_env_file=None)
    published = {payload.topic for _, payload in published_events("any")}
    consumed = consumed_streams(settings)
    for topic in published | set(consumed):
        assert rows[topic]["on_nats"]["subject"] == topic
        assert rows[topic]["on_nats"]["stream"] == stream_for(topic)
    group = settings.consumer.group
    for stream in consumed:
        letters = rows[dead_letter_stream_on_redis(stream)]["on_nats"]
        assert letters == {
            "subject": dead_letter_subject(stream),
            "stream": dead_letter_stream(stream),
        }
        assert rows[stream]["on_nats"]["durable_consumer"] == group
        assert exhausted_stream(stream, group) in rows


def test_every_setting_is_described() -> None:
    undescribed = [row["variable"] for row in load("settings.json") if not row["description"]]
    assert undescribed == []


def test_every_default_reads_back_as_written_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reference writes defaults as `.env` takes them: written back, each is the default."""
    for row in load("settings.json"):
        if row["default"] and row["default"] != "(secret)":
            monkeypatch.setenv(row["variable"], row["default"])
    written = OrdersSettings(_env_file=None).model_dump()
    monkeypatch.undo()
    assert written == OrdersSettings(_env_file=None).model_dump()


def names_in_source() -> set[str]:
    """Every class, function and module-level name defined under src/."""
    defined = re.compile(r"^\s*(?:class|def|async def) (\w+)|^(\w+)(?:: [^=]+)? = ", re.MULTILINE)
    return {
        name
        for path in Path("src").rglob("*.py")
        for match in defined.finditer(path.read_text())
        for name in match.groups()
        if name
    }


def test_the_tables_prose_names_what_exists() -> None:
    """Each table's purpose and writers: the columns listed in parentheses, the values listed
    with `|`, the classes, the setting and the commands named exist."""
    defined = names_in_source()
    subcommands = set(re.findall(r"^    ([a-z-]+) ", _parser().format_help(), flags=re.MULTILINE))
    wrong = []
    for row in load("tables.json"):
        if row["table"] == "alembic_version":
            continue
        table = Base.metadata.tables[row["table"]]
        prose = f"{row['purpose']} {row['written_by']}"
        for listed in re.findall(r"\(([a-z_ ]+(?:, [a-z_ ]+)+)\)", prose):
            wrong += [c for c in listed.split(", ") if c.replace(" ", "_") not in table.columns]
        for values in re.findall(r"\b(\w+) \((\w+(?:\|\w+)+)\)", prose):
            enum = getattr(table.columns[values[0]].type, "enums", None)
            wrong += [] if set(values[1].split("|")) == set(enum or ()) else [values[0]]
        for name in re.findall(r"\b[A-Z][a-z]+[A-Z]\w*(?:\.\w+)?", prose):
            wrong += [name] if not set(name.split(".")) <= defined else []
        for path in re.findall(r"\b([a-z_]+\.[a-z_]+)\b", prose):
            group, field = path.split(".")
            known = getattr(OrdersSettings(_env_file=None), group, None)
            wrong += [path] if not hasattr(known, field) else []
        for command in re.findall(rf"`{SERVICE} ([a-z-]+)", prose):
            wrong += [] if command in subcommands else [command]
    assert wrong == []


def test_the_streams_prose_says_what_the_code_does() -> None:
    """The attempts before a dead letter, the consumer group and the commands each stream's
    producers and consumers are named by."""
    consumer = OrdersSettings(_env_file=None).consumer
    subcommands = set(re.findall(r"^    ([a-z-]+) ", _parser().format_help(), flags=re.MULTILINE))
    wrong = []
    for row in load("streams.json"):
        prose = " ".join([*row["producers"], *row["consumers"]])
        for attempts in re.findall(r"after (\d+) failed attempts", prose):
            wrong += [] if int(attempts) == consumer.max_retries + 1 else [attempts]
        for group in re.findall(r"consumer group `([^`]+)`|consumer `([^`]+)`", prose):
            wrong += [] if consumer.group in group else [group]
        for command in re.findall(rf"\b{SERVICE} ([a-z]+(?:-[a-z]+)*)\b", prose):
            wrong += [] if command in subcommands | {"publisher", "consumer"} else [command]
    assert wrong == []


def test_each_consumed_events_effect_is_what_its_handler_does() -> None:
    """`confirms the order` and `cancels the order (reason payment_failed)`: the handler that
    validates the payload calls the service's `confirm_order` / `cancel_order`, with that reason."""
    wrong = []
    for row in load("events.json")["consumed"]:
        module_name, payload = row["payload"].rsplit(".", 1)
        module = importlib.import_module(module_name)
        handlers = [
            inspect.getsource(function)
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module_name
            for _, function in inspect.getmembers(cls, inspect.isfunction)
            if f"{payload}.model_validate" in inspect.getsource(function)
        ]
        verb, noun = re.match(r"(\w+?)s the (\w+)", row["effect"]).groups()  # type: ignore[union-attr]
        reason = re.search(r"\(reason (\w+)\)", row["effect"])
        said = [f"{verb}_{noun}(", *([f'reason="{reason[1]}"'] if reason else [])]
        if len(handlers) != 1 or not all(part in handlers[0] for part in said):
            wrong.append(row["type"])
    assert wrong == []
