"""`make resource`: in a service generated with and without the example orders domain (the
run's shared ones, conftest.py), the new resource lints and passes its tests untouched; bad
names are refused."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.generator.support import VARIANTS, added_resource, run

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


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_invoices_in_a_generated_service_pass_lint_and_their_tests(
    request: pytest.FixtureRequest, variant: str
) -> None:
    service: Path = request.getfixturevalue(variant)

    with added_resource(service, "invoices") as written:
        assert "src/billing/services/invoices.py" in written
        run(["make", "lint"], service)
        run(["scripts/test-tools"], service)
        tests = [test.replace("/orders/", "/billing/") for test in RESOURCE_TESTS]
        run(["uv", "run", "--frozen", "pytest", *tests, "-p", "no:cacheprovider", "-q"], service)


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
