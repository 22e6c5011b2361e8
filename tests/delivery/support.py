"""Runs the delivery checks `make lint` runs, on the repository or on a broken copy."""

import contextlib
import io
import re
import shutil
from pathlib import Path

import delivery_checks

REPO = Path(__file__).resolve().parents[2]


def delivery_check(root: Path, *checks: str, strict: bool = False) -> tuple[int, str]:
    """Exit status and output of `scripts/delivery_checks.py --root ROOT CHECK...`, in process."""
    options = ["--root", str(root), *(["--strict"] if strict else []), *checks]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = delivery_checks.main(options)
    return status, printed.getvalue()


def copy_of_repo(destination: Path, *names: str) -> Path:
    """The named files and folders of the repository, copied into `destination`."""
    for name in names:
        source, target = REPO / name, destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    return destination


def replace_in(path: Path, old: str, new: str) -> None:
    """Replace text that must be there, so a sample cannot silently stop breaking anything."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


def recipe(target: str) -> list[str]:
    """The commands of a Makefile target, tab-indented lines after `target: ... ##`."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}:.*## ", line))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        commands.append(line.strip())
    return commands


def make_variable(target: str, name: str) -> str:
    makefile = (REPO / "Makefile").read_text()
    found = re.search(rf"^{target}: export {name} := (.+)$", makefile, re.MULTILINE)
    assert found, f"{target} sets no {name}"
    return found[1].strip()
