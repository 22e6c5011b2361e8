"""Writes the references generated from the code: docs/configuration.md, docs/problems.md,
m2m/settings.json and m2m/http.json. `--check` writes nothing and fails when a committed file is
out of date."""

import json
import sys
from enum import Enum
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from core.errors import DomainError
from orders.main import create_app
from orders.settings import OrdersSettings

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "ORDERS_"


def settings_reference() -> list[dict[str, Any]]:
    """Every environment variable the service reads, with its type, default and meaning."""
    return list(_walk(OrdersSettings, PREFIX, OrdersSettings.model_construct()))


def _walk(model: type[BaseModel], prefix: str, defaults: BaseModel) -> Any:
    for name, field in model.model_fields.items():
        value = getattr(defaults, name)
        if isinstance(value, BaseModel):
            yield from _walk(type(value), f"{prefix}{name.upper()}__", value)
            continue
        yield {
            "variable": prefix + name.upper(),
            "type": _type_name(field),
            "default": _default(value),
            "description": field.description or "",
        }


def _type_name(field: FieldInfo) -> str:
    return _describe(field.annotation)


def _describe(annotation: object) -> str:
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if args and type(None) in args:
        return " or ".join(_describe(arg) for arg in args if arg is not type(None)) + " (optional)"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(str(member.value) for member in annotation)
    if get_origin(annotation) is list:
        return f"JSON list of {_describe(args[0])}"
    name = getattr(annotation, "__name__", str(annotation))
    readable = {
        "SecretStr": "a secret string",  # pragma: allowlist secret
        "str": "string",
        "int": "integer",
    }
    return readable.get(name, name)


def _default(value: object) -> str:
    """The default as it is written in the environment (`.env`, a ConfigMap): booleans as
    `true`/`false`, lists as JSON, nothing for none."""
    if hasattr(value, "get_secret_value"):
        return "(secret)" if value.get_secret_value() else ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, Enum):
        return str(value.value)
    return "" if value is None else str(value)


def http_reference() -> list[dict[str, Any]]:
    """Every operation of the API, with the problems it can return."""
    settings = OrdersSettings(_env_file=None)
    server = settings.server.model_copy(update={"docs_enabled": True})
    schema = create_app(settings.model_copy(update={"server": server})).openapi()
    operations = []
    for path, item in sorted(schema["paths"].items()):
        for method, operation in sorted(item.items()):
            responses = operation.get("responses", {})
            requirements = operation.get("security", [])
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("description", ""),
                    "statuses": sorted(responses),
                    "authentication": "bearer JWT" if "security" in operation else "none",
                    "scopes": sorted(
                        {s for need in requirements for v in need.values() for s in v}
                    ),
                    "idempotency_key": any(
                        p["name"] == "idempotency-key" for p in operation.get("parameters", [])
                    ),
                }
            )
    return operations


def configuration_markdown(reference: list[dict[str, Any]]) -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `OrdersSettings` by `make reference`; a test fails when it is stale.",
        "Every variable is optional; `.env.example` shows them with their defaults.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{row['variable']}` | {row['type']} | {_cell(row['default'])} | {row['description']} |"
        for row in reference
    ]
    return "\n".join(lines) + "\n"


# Problems the error handlers render for the framework's own errors, typed by their status.
FRAMEWORK_PROBLEMS = {
    HTTPStatus.NOT_FOUND: "no route has this path",
    HTTPStatus.METHOD_NOT_ALLOWED: "the path has no such method; `Allow` names those it has",
    HTTPStatus.CONTENT_TOO_LARGE: "a body over `ORDERS_HTTP__MAX_BODY_BYTES`, refused unread",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "a request body that is not `application/json`",
    HTTPStatus.INTERNAL_SERVER_ERROR: "anything unexpected: logged with its trace, never detailed",
    HTTPStatus.GATEWAY_TIMEOUT: "the request ran past `ORDERS_HTTP__REQUEST_TIMEOUT_SECONDS`",
}


def problems_reference() -> list[tuple[str, int, str, str]]:
    """(type, status, title, where it comes from) of every problem the service answers."""
    create_app()  # imports every module that defines an error
    rows = {
        (f"/problems/{error.slug}", int(error.status), error.title, _raised_by(error))
        for error in _subclasses(DomainError)
    }
    rows |= {
        (f"/problems/{status.phrase.lower().replace(' ', '-')}", int(status), status.phrase, when)
        for status, when in FRAMEWORK_PROBLEMS.items()
    }
    return sorted(rows, key=lambda row: (row[1], *row))


def _subclasses(error: type[DomainError]) -> list[type[DomainError]]:
    return [error, *(each for sub in error.__subclasses__() for each in _subclasses(sub))]


def _raised_by(error: type[DomainError]) -> str:
    doc = (error.__doc__ or "").strip().splitlines()
    first = doc[0] if doc and error.__doc__ != DomainError.__doc__ else ""
    return f"`{error.__module__}.{error.__name__}`" + (f": {first}" if first else "")


def problems_markdown(rows: list[tuple[str, int, str, str]]) -> str:
    lines = [
        "# Problem types",
        "",
        "Generated from the error classes by `make reference`; a test fails when it is stale.",
        "Every error is `application/problem+json` (RFC 9457) with `type`, `title`, `status`,",
        "`detail`, `instance` and the `request_id` that is also in the `X-Request-ID` header;",
        "invalid input adds `errors` with the location of each bad field.",
        "",
        "| type | status | title | from |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{kind}` | {status} | {title} | {source} |" for kind, status, title, source in rows
    ]
    return "\n".join(lines) + "\n"


def _cell(default: str) -> str:
    return f"`{default}`" if default else "(empty)"


def files() -> dict[Path, str]:
    settings = settings_reference()
    return {
        ROOT / "docs" / "configuration.md": configuration_markdown(settings),
        ROOT / "docs" / "problems.md": problems_markdown(problems_reference()),
        ROOT / "m2m" / "settings.json": json.dumps(settings, indent=2) + "\n",
        ROOT / "m2m" / "http.json": json.dumps(http_reference(), indent=2) + "\n",
    }


def main(argv: list[str]) -> int:
    current = files()
    stale = [
        path for path, text in current.items() if not path.exists() or path.read_text() != text
    ]
    if "--check" in argv:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `make reference`)")
        return 1 if stale else 0
    for path, text in current.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
