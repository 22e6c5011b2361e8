#!/usr/bin/env python3
"""Checks of the delivery files that cannot run on a machine without Docker or GitHub.

`make lint`, the pre-commit hooks, CI and the tests all run them through this one command:

    scripts/delivery_checks.py [--root DIR] [--strict] [CHECK ...]   (no CHECK: every one)
"""

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from delivery_commands import compare, load_yaml
from delivery_dockerfile import image_problems

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


@dataclass
class Options:
    root: Path
    strict: bool = False  # awaited subcommands fail too
    notes: list[str] = field(default_factory=list)  # printed whether or not the check passes


def run(root: Path, *args: str, stdin: str | None = None) -> tuple[bool, str]:
    env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(  # noqa: S603 - fixed tool names, arguments from this script
        args, cwd=root, env=env, input=stdin, capture_output=True, text=True, check=False
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def dockerfile(options: Options) -> list[str]:
    """hadolint, then what hadolint does not check: the final stage's user, tools and deps."""
    ok, output = run(options.root, "hadolint", "--no-color", "Dockerfile")
    return ([] if ok else [output]) + image_problems(options.root / "Dockerfile")


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
        # alembic/env.py sets lock_timeout and statement_timeout ahead of every revision.
        squawk = ["squawk", "--reporter", "gcc", "--exclude", ",".join(sorted(SQUAWK_EXCLUDED))]
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
    help_text = cli_help()
    listed = re.search(r"\{([\w,-]+)\}", help_text)
    if not listed:
        return [f"`orders --help` lists no subcommands:\n{help_text}"]
    comparison = compare(options.root, set(listed[1].split(",")), strict=options.strict)
    options.notes.extend(comparison.notes)
    return comparison.problems


def cli_help() -> str:
    """What `orders --help` prints, from the parser of the installed CLI."""
    from orders.cli import main as orders  # noqa: PLC0415 - a second to import; only here

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
        orders(["--help"])
    return printed.getvalue()


CHECKS: dict[str, Callable[[Options], list[str]]] = {
    "dockerfile": dockerfile,
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
