"""Turns a fresh copy of the template into a named service: copier runs it after copying.

    python scripts/generator/generate.py --name billing --description "..." [--no-example]

It runs in the new service's directory and reads only the standard library, so copier's
own interpreter runs it. Running it again over a regenerated tree gives the same result,
which `copier update` relies on.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file by copier

from generator.example import keep_example, remove_example
from generator.rename import Service, rename_service

# The template's own introduction, and what speaks of the template itself (its generator
# section in the README, lines of docs/ on files a service is not given); a service writes its own.
TEMPLATE_SECTION = re.compile(r"<!-- template -->\n.*?<!-- /template -->\n", re.DOTALL)
INTRODUCTION = re.compile(r"(?s)(<!-- introduction -->\n).*?(<!-- /introduction -->\n)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--event-prefix")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--with-example", dest="example", action="store_true", default=True)
    parser.add_argument("--no-example", dest="example", action="store_false")
    parser.add_argument(
        "--no-references",
        dest="references",
        action="store_false",
        help="skip `make fmt reference catalogue` (they need uv and the locked tools)",
    )
    args = parser.parse_args(argv)
    root = Path.cwd()
    if args.example:
        keep_example(root)
    else:
        remove_example(root)
    describe(root, args.description)
    rename_service(root, Service(args.name, args.event_prefix or args.name, args.port))
    if args.references:
        tidy_and_regenerate()


def tidy_and_regenerate() -> None:
    """Imports sorted and lines wrapped under the new names; then what the settings, routes
    and events now say, written where the tests compare them."""
    environment = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # copier's
    uv = [*(["uv"] if shutil.which("uv") else ["python3", "-m", "uv"]), "run", "--frozen", "-q"]
    for command in (
        [*uv, "ruff", "check", "--select", "I", "--fix", "--quiet", "."],
        [*uv, "ruff", "format", "--quiet", "."],
        ["make", "--no-print-directory", "reference", "catalogue"],
    ):
        # Fixed tool names; the arguments are this script's own.
        subprocess.run(command, check=True, env=environment | {"UV_PYTHON_DOWNLOADS": "never"})  # noqa: S603


def describe(root: Path, description: str) -> None:
    for document in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        text = document.read_text(encoding="utf-8")
        if TEMPLATE_SECTION.search(text):
            document.write_text(TEMPLATE_SECTION.sub("", text), encoding="utf-8")
    readme = root / "README.md"
    text = INTRODUCTION.sub(lambda m: f"{m[1]}{description}\n{m[2]}", readme.read_text("utf-8"))
    readme.write_text(text, encoding="utf-8")
    # The template's own command: a generated service is updated, not generated from.
    facts = root / "m2m" / "service.json"
    lines = facts.read_text(encoding="utf-8").splitlines(keepends=True)
    facts.write_text("".join(line for line in lines if '"generate_service"' not in line), "utf-8")
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^description = ".*"$', f"description = {_toml(description)}", text)
    pyproject.write_text(text, encoding="utf-8")  # also the OpenAPI summary


def _toml(value: str) -> str:
    """A TOML basic string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
