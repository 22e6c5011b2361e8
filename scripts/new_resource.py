"""`make resource name=invoices`: a new resource across the layers, in the house style.

Writes the model, schemas, repository, service, routes, migration and tests from
scripts/resource_templates/, registers the resource where the service lists its resources, adds
its facts to m2m/ and regenerates the references. docs/adding-a-resource.md says what next.
"""

import argparse
import ast
import builtins
import datetime as dt
import importlib
import json
import keyword
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import resource_edits as edits

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "resource_templates"
PLURAL = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]s$")
SINGULAR = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")
# Names the generated modules already use for something else.
TAKEN = {
    "base", "changes", "config", "event", "field", "filters", "header", "idempotency", "log",
    "page", "payload", "query", "request", "resource", "response", "router", "security",
    "service", "session", "status", "title", "note", "uow", "version",
}  # fmt: skip
# The tables and streams every service has, whatever its resources.
CORE_TABLES = ("outbox_events", "outbox_dead_events", "outbox_key_holds", "inbox_events")


@dataclass(frozen=True)
class Names:
    pkg: str  # the service's package under src/
    plural: str  # invoices: table, module, topic, scopes
    singular: str  # invoice: variables, event names
    uow: str  # the unit of work class, e.g. OrdersUnitOfWork
    settings: str  # the settings class, e.g. OrdersSettings

    @property
    def model(self) -> str:
        return "".join(part.capitalize() for part in self.singular.split("_"))

    def template_values(self) -> dict[str, str]:
        human = self.singular.replace("_", " ")
        return {
            "pkg": self.pkg,
            "plural": self.plural,
            "singular": self.singular,
            "Singular": self.model,
            "SINGULAR": self.singular.upper(),
            "human": human,
            "Human": human.capitalize(),
            "human_plural": self.plural.replace("_", " "),
            "slug": self.singular.replace("_", "-"),
            "path": self.plural.replace("_", "-"),
            "Uow": self.uow,
            "Settings": self.settings,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plural", help="plural snake_case noun, e.g. invoices or line_items")
    parser.add_argument("--singular", help="when it is not the plural without its final s")
    arguments = parser.parse_args(argv)
    plural: str = arguments.plural
    singular: str = arguments.singular or plural.removesuffix("s")
    pkg = find_package(ROOT / "src")
    names = Names(
        pkg=pkg,
        plural=plural,
        singular=singular,
        uow=class_based_on(ROOT / "src" / pkg / "unit_of_work.py", "UnitOfWork"),
        settings=class_based_on(ROOT / "src" / pkg / "settings.py", "CoreSettings"),
    )
    problems = refusals(names)
    if problems:
        raise SystemExit("make resource: " + "; ".join(problems))
    written = write_layers(names) + register(names)
    written.append(write_migration(names))
    format_python(written)
    add_facts(names)
    regenerate(names)
    print(f"{plural}: wrote or changed")
    for path in [*written, *(ROOT / "m2m" / name for name in FACT_FILES)]:
        print(f"  {path.relative_to(ROOT)}")
    print("next: docs/adding-a-resource.md")


def find_package(src: Path) -> str:
    packages = [p.name for p in src.iterdir() if (p / "__init__.py").exists() and p.name != "core"]
    if len(packages) != 1:
        raise SystemExit(f"expected one service package under src/ beside core, found {packages}")
    return packages[0]


def class_based_on(path: Path, base: str) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == base for b in node.bases):
            return node.name
    raise SystemExit(f"{path.relative_to(ROOT)}: no class based on {base}")


def refusals(names: Names) -> list[str]:
    plural, singular = names.plural, names.singular
    problems = []
    if not PLURAL.match(plural):
        problems.append(f"{plural!r} is not a plural snake_case noun such as invoices")
    if not SINGULAR.match(singular) or singular == plural:
        problems.append(f"{singular!r} is not a singular snake_case noun (try --singular)")
    for name in (plural, singular):
        if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
            problems.append(f"{name!r} is a Python keyword or builtin")
        if name in TAKEN or name in {names.pkg, "core"}:
            problems.append(f"{name!r} already names something in the generated code")
    existing = [path for path, _ in layer_files(names) if path.exists()]
    tables = {row["table"] for row in json.loads((ROOT / "m2m" / "tables.json").read_text())}
    if existing or plural in tables:
        problems.append(f"the resource {plural!r} exists already")
    return problems


def layer_files(names: Names) -> list[tuple[Path, str]]:
    """Each new file with the template it is rendered from."""
    src, tests = ROOT / "src" / names.pkg, ROOT / "tests" / names.pkg
    module = f"{names.plural}.py"
    return [
        (src / "models" / module, "model"),
        (src / "schemas" / module, "schemas"),
        (src / "repositories" / module, "repository"),
        (src / "services" / module, "service"),
        (src / "routes" / module, "routes"),
        (tests / "routes" / f"test_{module}", "test_routes"),
        (tests / "services" / f"test_{module}", "test_service"),
        (tests / "repositories" / f"test_{module}", "test_repository"),
    ]


def render(template: str, values: dict[str, str]) -> str:
    return Template((TEMPLATES / f"{template}.py.tmpl").read_text()).substitute(values)


def write_layers(names: Names) -> list[Path]:
    values = names.template_values()
    written = []
    for path, template in layer_files(names):
        for package in (path.parent, path.parent.parent):  # tests/<pkg>/<layer>/ are packages
            if package.is_relative_to(ROOT / "tests") and not (package / "__init__.py").exists():
                package.mkdir(parents=True, exist_ok=True)
                (package / "__init__.py").touch()
        path.write_text(render(template, values))
        written.append(path)
    return written


def register(names: Names) -> list[Path]:
    """List the resource where the service looks for its models, routes, repositories,
    providers, errors and events."""
    pkg, plural, model, values = names.pkg, names.plural, names.model, names.template_values()
    src = ROOT / "src" / pkg
    changes: dict[Path, Callable[[str], str]] = {
        src / "models" / "__init__.py": lambda s: edits.register_model(s, pkg, plural, model),
        src / "routes" / "__init__.py": lambda s: edits.register_routes(s, pkg, plural),
        src / "unit_of_work.py": lambda s: edits.register_repository(
            s, pkg, plural, f"{model}Repository"
        ),
        src / "errors.py": lambda s: edits.append(
            edits.add_imports(s, ["import uuid", "from core.errors import NotFoundError"]),
            render("errors", values),
        ),
        src / "events.py": lambda s: edits.register_events(
            s, render("events", values), f"{names.singular.upper()}_EVENTS"
        ),
        src / "dependencies.py": lambda s: edits.append(
            edits.add_imports(s, dependency_imports(names)), render("dependencies", values)
        ),
    }
    for path, change in changes.items():
        path.write_text(change(path.read_text()))
    return list(changes)


def dependency_imports(names: Names) -> list[str]:
    return [
        "from typing import Annotated",
        "from fastapi import Depends",
        "from fastapi import Request",
        "from core.idempotency import Idempotency",
        "from core.idempotency import idempotency_key",
        "from core.resources import resources_of",
        f"from {names.pkg}.services.{names.plural} import {names.model}Service",
        f"from {names.pkg}.unit_of_work import {names.uow}",
    ]


def write_migration(names: Names) -> Path:
    versions = ROOT / "alembic" / "versions"
    now = dt.datetime.now(dt.UTC)
    revision = uuid.uuid4().hex[-12:]
    head = edits.current_head(versions)
    values = {
        **names.template_values(),
        "revision": revision,
        "down_revision": head or "",
        "down_revision_repr": f'"{head}"' if head else "None",
        "created": str(now),
    }
    path = versions / f"{now:%Y%m%d_%H%M}_{revision}_create_{names.plural}.py"
    path.write_text(render("migration", values))
    return path


FACT_FILES = ("tables.json", "events.json", "streams.json")


def add_facts(names: Names) -> None:
    """The resource's table, event types and stream in m2m/, as the other rows are written."""
    from core.jetstream import stream_for  # noqa: PLC0415 - the service's own environment

    settings = service_settings(names)
    m2m, plural, singular = ROOT / "m2m", names.plural, names.singular
    tables = json.loads((m2m / "tables.json").read_text())
    row = {
        "table": plural,
        "purpose": f"The {names.model} resource: title, note, version_id for optimistic locking.",
        "written_by": f"{names.model}Service through {names.uow}",
    }
    at = next((i for i, r in enumerate(tables) if r["table"] in CORE_TABLES), len(tables))
    tables.insert(at, row)
    (m2m / "tables.json").write_text(_rows(tables))
    events = json.loads((m2m / "events.json").read_text())
    for verb, payload in (("created", "Created"), ("changed", "Changed")):
        event_type = f"{settings.events.type_prefix}.{singular}.{verb}.v1"
        events["published"].append(
            {
                "type": event_type,
                "payload": f"{names.pkg}.events.{names.model}{payload}",
                "schema": f"docs/events/schemas/{event_type}.json",
                "stream": plural,
                "partition_key": f"{singular} id",
                "sequence": f"the {singular}'s version",
                "idempotency_key": "CloudEvent id (UUIDv7)",
            }
        )
    (m2m / "events.json").write_text(json.dumps(events, indent=2, ensure_ascii=False) + "\n")
    streams = json.loads((m2m / "streams.json").read_text())
    streams.append(
        {
            "stream": plural,
            "producers": [f"{names.pkg} publisher ({names.pkg} publish)"],
            "consumers": ["other services' consumer groups"],
            "events": "see m2m/events.json published",
            "order": f"per aggregate (partitionkey = {singular} id)",
            "on_nats": {"subject": plural, "stream": stream_for(plural)},
        }
    )
    (m2m / "streams.json").write_text(_rows(streams))


def _rows(rows: list[dict[str, Any]]) -> str:
    """One JSON object a line, as m2m's hand-kept lists are written."""
    body = ",\n".join(f"  {json.dumps(row, ensure_ascii=False)}" for row in rows)
    return f"[\n{body}\n]\n" if rows else "[]\n"


def service_settings(names: Names) -> Any:
    module = importlib.import_module(f"{names.pkg}.settings")
    return getattr(module, names.settings)(_env_file=None)


def format_python(paths: list[Path]) -> None:
    files = [str(path) for path in paths]
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "check", "--fix", "--quiet", *files], cwd=ROOT, check=True)  # noqa: S603
    subprocess.run([*ruff, "format", "--quiet", *files], cwd=ROOT, check=True)  # noqa: S603


def regenerate(names: Names) -> None:
    """docs/configuration.md, m2m/http.json (the new routes) and docs/events (the schemas)."""
    prefix = service_settings(names).model_config.get("env_prefix", "")
    env = {**os.environ, f"{prefix}LOGGING__LEVEL": "WARNING"}
    for command in (["scripts/reference.py"], ["-m", names.pkg, "catalogue"]):
        subprocess.run([sys.executable, *command], cwd=ROOT, env=env, check=True)  # noqa: S603


if __name__ == "__main__":
    main()
