"""`make resource`: in a copy of the repository, the new resource lints and passes its tests.

Once in the repository as it is, once in a service without the example orders domain. Each copy
gets its own `.venv` (from the uv cache, in seconds), so nothing here touches this checkout.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.generator.without_example import remove_the_example

ROOT = Path(__file__).resolve().parents[2]
RESOURCE_TESTS = [
    "tests/orders/routes/test_invoices.py",
    "tests/orders/services/test_invoices.py",
    "tests/orders/repositories/test_invoices.py",
    "tests/test_m2m.py",
    "tests/test_migrations.py",
]


def copy_repository(target: Path) -> Path:
    """The files git knows of, committed or not, as a fresh checkout would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run(root: Path, *command: str) -> str:
    """A command through the copy's own locked environment; it must succeed."""
    # Not this run's coverage: the copy's processes would report into this run's data.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COV_CORE", "COVERAGE", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"))
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"
    result = subprocess.run(
        ["uv", "run", "--frozen", *command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("example", ["with the example", "without the example"])
def test_a_generated_resource_lints_and_passes_its_tests(tmp_path: Path, example: str) -> None:
    root = copy_repository(tmp_path / "service")
    if example == "without the example":
        remove_the_example(root)

    written = run(root, "python", "scripts/new_resource.py", "invoices")

    assert "src/orders/services/invoices.py" in written
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]):
        run(root, *check)
    run(root, "lint-imports")
    run(root, "pytest", *RESOURCE_TESTS, "-p", "no:cacheprovider", "-q")


def test_a_resource_that_exists_or_a_bad_name_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    root = copy_repository(tmp_path / "service")
    # orders exists; not snake_case; not plural; a builtin singular; a name the code uses.
    for name in ("orders", "Invoices", "invoice", "lists", "pages"):
        result = subprocess.run(
            [sys.executable, "scripts/new_resource.py", name],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1, name
        assert result.stderr.startswith("make resource: "), (name, result.stderr)
    models = sorted(path.name for path in (root / "src" / "orders" / "models").iterdir())
    assert models == ["__init__.py", "orders.py"]
