"""The committed event catalogue matches the code, and published schemas only grow."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core.catalogue import compatibility_problems
from orders.catalogue import CATALOGUE_DIR, catalogue, render, write_catalogue
from orders.events import ORDER_EVENTS
from orders.settings import OrdersSettings


def test_the_committed_catalogue_is_what_the_code_generates(settings: OrdersSettings) -> None:
    generated = {path: render(document) for path, document in catalogue(settings).items()}
    committed = {
        path.relative_to(CATALOGUE_DIR): path.read_text() for path in CATALOGUE_DIR.rglob("*.json")
    }
    assert committed == generated, "run `make catalogue` and commit docs/events"


def test_every_event_type_is_in_the_asyncapi_document(settings: OrdersSettings) -> None:
    document = json.loads((CATALOGUE_DIR / "asyncapi.json").read_text())
    assert document["asyncapi"] == "3.0.0"
    sent = {
        ref["$ref"].rsplit("/", 1)[-1] for ref in document["operations"]["send-orders"]["messages"]
    }
    prefix = settings.events.type_prefix
    assert sent == {f"{prefix}.{payload.name}.v{payload.version}" for payload in ORDER_EVENTS}
    received = document["operations"]["receive-payments"]["messages"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in received} == {
        "payments.payment.succeeded.v1",
        "payments.payment.failed.v1",
    }


@pytest.fixture
def placed() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (CATALOGUE_DIR / "schemas" / "orders.order.placed.v1.json").read_text()
    )
    return schema


def test_an_optional_new_field_is_compatible(placed: dict[str, Any]) -> None:
    current = copy.deepcopy(placed)
    current["properties"]["channel"] = {"type": "string"}
    assert compatibility_problems(placed, current) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["properties"].pop("currency"), "field 'currency' was removed"),
        (
            lambda s: s["properties"]["total"].update(type="number"),
            "field 'total' changed from {'type': 'string'} to {'type': 'number'}",
        ),
        (
            lambda s: (
                s["properties"].update(channel={"type": "string"}),
                s["required"].append("channel"),
            ),
            "field 'channel' is newly required",
        ),
        (
            lambda s: s["$defs"]["EventLine"]["properties"].pop("sku"),
            "EventLine: field 'sku' was removed",
        ),
    ],
)
def test_breaking_changes_are_named(placed: dict[str, Any], change: Any, problem: str) -> None:
    current = copy.deepcopy(placed)
    change(current)
    assert compatibility_problems(placed, current) == [problem]


def test_the_catalogue_command_refuses_to_overwrite_a_schema_incompatibly(
    settings: OrdersSettings, tmp_path: Path
) -> None:
    assert write_catalogue(settings, tmp_path) == []
    schema_file = tmp_path / "schemas" / "orders.order.placed.v1.json"
    published = json.loads(schema_file.read_text())
    published["properties"]["coupon"] = {"type": "string"}  # a field the code no longer has
    schema_file.write_text(json.dumps(published))
    assert write_catalogue(settings, tmp_path) == [
        "orders.order.placed.v1.json: field 'coupon' was removed"
    ]
    assert json.loads(schema_file.read_text()) == published
