#!/usr/bin/env python3
"""Checks of the delivery files that cannot run on a machine without Docker or GitHub.

`make lint`, the pre-commit hooks, CI and the tests all run them through this one command:

    scripts/delivery_checks.py [--root DIR] [--strict] [CHECK ...]   (no CHECK: every one)
"""

import argparse
import ast
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script

# The tools of this environment (hadolint, docker-compose, actionlint, squawk ...) come first.
TOOLS = Path(sys.executable).parent
COMPOSE_FILE_SETS = (("compose.yml",), ("compose.yml", "compose-dev.yml"))

# Squawk rules left out for every revision.
SQUAWK_EXCLUDED = {
    # Bounded strings are part of the schema (a currency is 3 letters), and Alembic's own
    # alembic_version table is VARCHAR(32); widening one later is a reviewed, brief lock.
    "prefer-text-field",
    # Keys are UUIDv7; the int columns are small counts (version, position, quantity).
    "prefer-bigint-over-int",
}
# Left out for the first revision only: it creates the schema in an empty database, where no
# other session can hold a lock on its brand-new tables, so there is nothing to wait for.
SQUAWK_EXCLUDED_FOR_NEW_SCHEMA = {"require-lock-timeout", "require-statement-timeout"}

# Subcommands that compose.yml runs and that another change is adding to the CLI right now.
# While `orders --help` lacks one, the check names it and passes (`--strict` fails instead);
# once the CLI has it, it is checked like any other, and this entry can go.
AWAITED_SUBCOMMANDS = {"publish": "the outbox publisher", "consume": "the event consumer"}
# The tests of these files run no service command themselves; their broken samples would count.
NOT_SCANNED_FOR_COMMANDS = ("tests/delivery",)


def run(root: Path, *args: str, stdin: str | None = None) -> tuple[bool, str]:
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(  # noqa: S603 - fixed tool names, arguments from this script
        args, cwd=root, env=env, input=stdin, capture_output=True, text=True, check=False
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


@dataclass
class Options:
    root: Path
    strict: bool = False  # awaited subcommands fail too
    notes: list[str] = field(default_factory=list)  # printed whether or not the check passes


def hadolint(options: Options) -> list[str]:
    ok, output = run(options.root, "hadolint", "--no-color", "Dockerfile")
    return [] if ok else [output]


def compose(options: Options) -> list[str]:
    problems = []
    for files in COMPOSE_FILE_SETS:
        named = [option for name in files for option in ("-f", name)]
        # Every profile, so the opt-in services are checked too.
        arguments = [*named, "--profile", "*", "config", "--quiet"]
        ok, output = run(options.root, "docker-compose", *arguments)
        if not ok:
            problems.append(f"{' + '.join(files)}: {output}")
    return problems


def workflows(options: Options) -> list[str]:
    root, problems = options.root, []
    files = sorted(str(path.relative_to(root)) for path in root.glob(".github/workflows/*.y*ml"))
    ok, output = run(root, "actionlint", "-no-color", *files)
    if not ok:
        problems.append(output)
    schema = ("check-jsonschema", "--builtin-schema", "vendor.dependabot")
    ok, output = run(root, *schema, ".github/dependabot.yml")
    if not ok:
        problems.append(output)
    return problems


def migrations(options: Options) -> list[str]:
    """Each revision's offline SQL on its own, so earlier tables count as existing ones."""
    # Imported here: SQLAlchemy takes a second to import, and only this check needs it.
    from alembic.config import Config  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    root = options.root
    config = Config(str(root / "alembic.ini"))
    config.attributes["configure_logging"] = False  # logs would land in the SQL
    # Offline SQL needs no server; should anything connect, it finds none rather than a real one.
    config.attributes["url"] = "postgresql+asyncpg://offline@127.0.0.1:9/offline"
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    pg_version = postgres_version(root)
    problems = []
    for revision in revisions:
        excluded = set(SQUAWK_EXCLUDED)
        if revision.down_revision is None:
            excluded |= SQUAWK_EXCLUDED_FOR_NEW_SCHEMA
        squawk = ["squawk", "--reporter", "gcc", "--exclude", ",".join(sorted(excluded))]
        squawk += ["--stdin-filepath", f"{Path(revision.path).name}.sql"]
        squawk += ["--pg-version", pg_version] if pg_version else []
        ok, output = run(root, *squawk, stdin=offline_sql(config, revision))
        if not ok:
            problems.append(output)
    return problems


def offline_sql(config: "Config", revision: "Script") -> str:
    """What `alembic upgrade <previous>:<revision> --sql` prints."""
    from alembic import command  # noqa: PLC0415

    buffer = io.StringIO()
    config.output_buffer = buffer
    previous = revision.down_revision
    if isinstance(previous, tuple):  # a merge revision: any parent starts the range
        previous = previous[0]
    target = f"{previous}:{revision.revision}" if previous else revision.revision
    command.upgrade(config, target, sql=True)
    return buffer.getvalue()


def postgres_version(root: Path) -> str | None:
    """The version compose-dev.yml runs, so squawk judges the DDL for that server."""
    services = load_yaml(root / "compose-dev.yml").get("services", {})
    image = str(services.get("postgres", {}).get("image", ""))
    found = re.fullmatch(r"postgres:(\d+)\.(\d+).*", image)
    return f"{found[1]}.{found[2]}" if found else None


def commands(options: Options) -> list[str]:
    """What the image and compose run is what the tests run, through the same entry points."""
    root = options.root
    defined = cli_subcommands(root)
    tested, factories = commands_in_tests(root)
    problems = []
    for where, argv in commands_run(root):
        program, rest = argv[0], argv[1:]
        if program == "orders" and rest:
            subcommand = rest[0]
            if subcommand not in defined:
                if subcommand in AWAITED_SUBCOMMANDS and not options.strict:
                    awaited = f"{AWAITED_SUBCOMMANDS[subcommand]}, not in the CLI yet"
                    options.notes.append(f"awaited: {where}: `orders {subcommand}` ({awaited})")
                    continue
                problems.append(f"{where}: `orders {subcommand}` is not a subcommand of `orders`")
            elif subcommand not in tested:
                problems.append(f"{where}: no test runs `orders {subcommand}`")
        elif program == "uvicorn" and rest:
            if rest[0] not in factories:
                problems.append(f"{where}: no test builds the app from `{rest[0]}`")
        else:
            problems.append(f"{where}: runs `{shlex.join(argv)}`, which no test runs")
    return problems


def cli_subcommands(root: Path) -> set[str]:
    ok, output = run(root, "orders", "--help")
    found = re.search(r"\{([\w,-]+)\}", output)
    if not ok or not found:
        raise SystemExit(f"`orders --help` lists no subcommands:\n{output}")
    return set(found[1].split(","))


def commands_run(root: Path) -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of the Dockerfile's final stage and of every compose service of the image."""
    instructions = final_stage(root / "Dockerfile")
    entrypoint = json.loads(instructions.get("ENTRYPOINT", "[]"))
    yield "Dockerfile CMD", [*entrypoint, *json.loads(instructions.get("CMD", "[]"))]
    ours: set[str] = set()
    for name in ("compose.yml", "compose-dev.yml"):
        for service, spec in load_yaml(root / name).get("services", {}).items():
            if "build" in spec:
                ours.add(service)
            if service in ours and "command" in spec:
                argv = spec["command"]
                yield f"{name} {service}", shlex.split(argv) if isinstance(argv, str) else argv


def final_stage(dockerfile: Path) -> dict[str, str]:
    """The last value of each instruction in the last stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    stages = re.split(r"^FROM\s", text, flags=re.MULTILINE | re.IGNORECASE)
    instructions = {}
    for line in stages[-1].splitlines():
        keyword, _, value = line.strip().partition(" ")
        if value and not keyword.startswith("#"):
            instructions[keyword.upper()] = value.strip()
    return instructions


def commands_in_tests(root: Path) -> tuple[set[str], set[str]]:
    """The `orders` subcommands and the app factories that the test suite runs.

    A subcommand counts when a test spells out its argv (`[..., "orders", "serve"]`), calls
    `orders.cli.main(["migrate", ...])`, or calls the function of `orders.cli` named after it
    (`migrate(settings)`). A factory counts when a test imports it: `from orders.main import
    create_app` makes `orders.main:create_app`.
    """
    subcommands: set[str] = set()
    factories: set[str] = set()
    for path in sorted((root / "tests").rglob("*.py")):
        if path.relative_to(root).as_posix().startswith(NOT_SCANNED_FOR_COMMANDS):
            continue
        tree = ast.parse(path.read_text(), str(path))
        from_cli = imported_from(tree, "orders.cli")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                factories |= {f"{node.module}:{alias.name}" for alias in node.names}
            elif isinstance(node, ast.List | ast.Tuple):
                subcommands |= argv_subcommands(node.elts)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                original = from_cli.get(node.func.id)
                if original == "main" and node.args and isinstance(node.args[0], ast.List):
                    subcommands |= set(strings(node.args[0].elts)[:1])
                elif original is not None:
                    subcommands.add(original)
    return subcommands, factories


def imported_from(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> original name of everything the module imports from `module`."""
    return {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def argv_subcommands(elements: list[ast.expr]) -> set[str]:
    words = [e.value if isinstance(e, ast.Constant) else None for e in elements]
    return {
        after
        for before, after in itertools.pairwise(words)
        if before == "orders" and isinstance(after, str)
    }


def strings(elements: list[ast.expr]) -> list[str]:
    return [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text()) if path.exists() else None
    return loaded if isinstance(loaded, dict) else {}


CHECKS: dict[str, Callable[[Options], list[str]]] = {
    "hadolint": hadolint,
    "compose": compose,
    "workflows": workflows,
    "migrations": migrations,
    "commands": commands,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", metavar="CHECK", help=", ".join(CHECKS))
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--strict", action="store_true", help="awaited subcommands fail too")
    args = parser.parse_args(argv)
    if unknown := set(args.checks) - set(CHECKS):
        parser.error(f"unknown checks: {', '.join(sorted(unknown))}")
    failed = False
    for name in args.checks or CHECKS:
        options = Options(args.root.resolve(), strict=args.strict)
        problems = CHECKS[name](options)
        print(f"{name}: {'FAILED' if problems else 'ok'}")
        for line in [*options.notes, *problems]:
            print(f"  {line}".replace("\n", "\n  "))
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
