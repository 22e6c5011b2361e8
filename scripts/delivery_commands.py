"""The commands the image and compose run, and the ones the test suite runs, compared."""

import ast
import itertools
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from delivery_dockerfile import final_command

# Subcommands that compose.yml runs ahead of the CLI defining them. While `orders --help` lacks
# one, the check names it and passes (`--strict` fails instead). Empty: the CLI has them all.
AWAITED_SUBCOMMANDS: dict[str, str] = {}
# tests/support.py's `start_command(settings, "publish", ...)` runs `python -m orders publish`.
PROCESS_HELPER = "start_command"
# The tests of the delivery files run no service command; the samples they break would count.
NOT_SCANNED = ("tests/delivery",)


@dataclass
class Comparison:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare(root: Path, defined: set[str], *, strict: bool) -> Comparison:
    """Every `orders X` run must be defined by the CLI and run by a test; `uvicorn M:F` must
    serve the factory the tests build the app with; anything else is run by no test."""
    tested, factories = commands_in_tests(root)
    result = Comparison()
    for where, argv in commands_run(root):
        program, rest = (argv[0], argv[1:]) if argv else ("", [])
        if program == "orders" and rest:
            sub = rest[0]
            if sub not in defined and sub in AWAITED_SUBCOMMANDS and not strict:
                why = f"{AWAITED_SUBCOMMANDS[sub]}, not in the CLI yet"
                result.notes.append(f"awaited: {where}: `orders {sub}` ({why})")
            elif sub not in defined:
                known = ", ".join(sorted(defined))
                result.problems.append(f"{where}: `orders {sub}` is not a subcommand ({known})")
            elif sub not in tested:
                result.problems.append(f"{where}: no test runs `orders {sub}`")
        elif program == "uvicorn" and rest and rest[0] in factories:
            continue
        elif program == "uvicorn" and rest:
            result.problems.append(f"{where}: no test builds the app from `{rest[0]}`")
        else:
            result.problems.append(f"{where}: runs `{shlex.join(argv)}`, which no test runs")
    return result


def commands_run(root: Path) -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of the Dockerfile's final stage and of every compose service of the image."""
    yield "Dockerfile CMD", final_command(root / "Dockerfile")
    ours: set[str] = set()  # the services built from the Dockerfile, and their overrides
    for name in ("compose.yml", "compose-dev.yml"):
        for service, spec in load_yaml(root / name).get("services", {}).items():
            if "build" in spec:
                ours.add(service)
            if service in ours and "command" in spec:
                argv = spec["command"]
                yield f"{name} {service}", shlex.split(argv) if isinstance(argv, str) else argv


def commands_in_tests(root: Path) -> tuple[set[str], set[str]]:
    """The `orders` subcommands and the app factories that the test suite runs.

    A subcommand counts when a test spells out its argv (`[..., "orders", "serve"]`), calls
    `orders.cli.main(["migrate", ...])`, calls the function of `orders.cli` named after it
    (`migrate(settings)`), or starts it with `start_command(settings, "publish")`. A factory
    counts when a test imports it: `from orders.main import create_app` counts for
    `orders.main:create_app`.
    """
    subcommands: set[str] = set()
    factories: set[str] = set()
    for path in sorted((root / "tests").rglob("*.py")):
        if path.relative_to(root).as_posix().startswith(NOT_SCANNED):
            continue
        tree = ast.parse(path.read_text(), str(path))
        from_cli = _imported_from(tree, "orders.cli")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                factories |= {f"{node.module}:{alias.name}" for alias in node.names}
            elif isinstance(node, ast.List | ast.Tuple):
                subcommands |= _after_orders(node.elts)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == PROCESS_HELPER:
                    subcommands |= set(_strings(node.args[1:2]))
                    continue
                original = from_cli.get(node.func.id)
                if original == "main" and node.args and isinstance(node.args[0], ast.List):
                    subcommands |= set(_strings(node.args[0].elts)[:1])
                elif original is not None:
                    subcommands.add(original)
    return subcommands, factories


def _imported_from(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> original name of everything the module imports from `module`."""
    return {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def _after_orders(elements: list[ast.expr]) -> set[str]:
    words = [e.value if isinstance(e, ast.Constant) else None for e in elements]
    return {b for a, b in itertools.pairwise(words) if a == "orders" and isinstance(b, str)}


def _strings(elements: list[ast.expr]) -> list[str]:
    return [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) if path.exists() else None
    return loaded if isinstance(loaded, dict) else {}
