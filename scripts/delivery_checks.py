#!/usr/bin/env python3
"""Checks of the delivery files that cannot run on a machine without Docker or GitHub.

`make lint`, the pre-commit hooks, CI and the tests all run them through this one command:

    scripts/delivery_checks.py [--root DIR] [--strict] [CHECK ...]   (no CHECK: every one)
"""

import argparse
import contextlib
import functools
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from delivery_commands import compare, load_yaml
from delivery_dockerfile import image_problems
from delivery_kubernetes import DEVELOPMENT_ONLY, manifest_problems, settings_env_problems

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script

# The tools of this environment (hadolint, docker-compose, actionlint, squawk ...) come first.
TOOLS = Path(sys.executable).parent
COMPOSE_FILE_SETS = (("compose.yml",), ("compose.yml", "compose-dev.yml"))
REPO = Path(__file__).resolve().parent.parent
OVERLAYS = ("deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod")
# The oldest Kubernetes the manifests need (the preStop sleep action is on by default from
# 1.30) and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

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


def kubernetes(options: Options) -> list[str]:
    """Both overlays rendered, every object validated against the API schemas, and the rules
    of delivery_kubernetes.py: probes, an unprivileged pod, every setting from the ConfigMap or
    the Secret."""
    root = options.root
    settings = json.loads((root / "m2m" / "settings.json").read_text())
    names = [row["variable"] for row in settings]
    secrets = {row["variable"] for row in settings if row["type"] == "a secret string"}
    secrets -= DEVELOPMENT_ONLY
    env_file = "deploy/k8s/base/settings.env"
    found = settings_env_problems((root / env_file).read_text(), names, secrets)
    problems = [f"{env_file}: {problem}" for problem in found]
    for overlay in OVERLAYS:
        ok, output = run(root, "kubectl", "kustomize", overlay)
        if not ok:
            problems.append(f"{overlay}: `kubectl kustomize` failed: {output}")
            continue
        objects = [manifest for manifest in yaml.safe_load_all(output) if manifest]
        found = [*schema_problems(objects), *manifest_problems(objects, secrets)]
        problems += [f"{overlay}: {problem}" for problem in found]
    return problems


def schema_problems(objects: list[dict[str, object]]) -> list[str]:
    """kubernetes-validate, strict (an unknown field is an error), for each version."""
    import kubernetes_validate  # noqa: PLC0415 - loads its schemas; only this check needs it
    from kubernetes_validate import utils  # noqa: PLC0415

    # validate() parses the same multi-megabyte schema files again for every object; reading
    # each file once makes the check ten times faster. The parsed schemas are never changed.
    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.cache(utils.schema_contents)
    problems = []
    for manifest in objects:
        metadata = manifest.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(item) for item in error.path)
                problems.append(
                    f"{manifest.get('kind')} {name}, Kubernetes {version}: {path}: {error.message}"
                )
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{manifest.get('kind')} {name}: {error.message}")
    return problems


def checkov(options: Options) -> list[str]:
    """checkov's security scan of both rendered overlays and the Dockerfile; a finding is fixed
    or skipped by a `checkov.io/skipN` annotation saying why."""
    root = options.root
    with tempfile.TemporaryDirectory(prefix="orders-k8s-") as scratch:
        files = []
        for overlay in OVERLAYS:
            ok, output = run(root, "kubectl", "kustomize", overlay)
            if not ok:
                return [f"{overlay}: `kubectl kustomize` failed: {output}"]
            rendered = Path(scratch) / f"{Path(overlay).name}.yaml"
            rendered.write_text(output)
            files += ["-f", str(rendered)]
        ok, output = run_checkov(root, *files, "-f", "Dockerfile")
    return [] if ok else [output]


def run_checkov(root: Path, *arguments: str) -> tuple[bool, str]:
    """checkov from its own environment (.venv-checkov, or CHECKOV_ENVIRONMENT's path), locked
    apart from the dev tools in the `checkov` dependency group; uv installs it on the first run.
    Several trees linted in one run (generated services) can share one."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        return False, "uv is not installed: `make install` installs it"
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    checkov_environment = os.environ.get("CHECKOV_ENVIRONMENT") or str(REPO / ".venv-checkov")
    environment["UV_PROJECT_ENVIRONMENT"] = checkov_environment
    uv_run = [uv, "run", "--frozen", "--quiet", "--project", str(REPO)]
    uv_run += ["--only-group", "checkov", "--compile-bytecode"]
    # --skip-download: nothing is fetched from the vendor's platform; the built-in checks run.
    scan = ["checkov", "--framework", "kubernetes", "dockerfile", "--compact", "--quiet"]
    scan += ["--skip-download", *arguments]
    result = subprocess.run(  # noqa: S603 - fixed tool names, arguments from this script
        [*uv_run, *scan], cwd=root, env=environment, capture_output=True, text=True, check=False
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


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
    "kubernetes": kubernetes,
    "checkov": checkov,
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
