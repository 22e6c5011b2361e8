"""`copier copy` of this repository: a named service, with or without the example domain,
whose lint and tests pass on the real PostgreSQL and Redis."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.generator.support import DESCRIPTION, TEMPLATE, WITH_EXAMPLE, WITHOUT_EXAMPLE, run

pytestmark = pytest.mark.slow

# Files where, once the example is gone, any `orders` left is a rename the generator missed.
SERVICE_FILES = (
    "src/**/*.py",
    "alembic/**/*.py",
    "deploy/**/*.yaml",
    "deploy/**/*.env",
    "compose*.yml",
    "Dockerfile",
    "Makefile",
    "pyproject.toml",
    ".env.example",
    "m2m/*.json",
    "docs/configuration.md",
    "docs/events/**/*.json",
)


def test_the_service_has_its_own_names(service: Path) -> None:
    pyproject = tomllib.loads((service / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "billing-service"
    assert pyproject["project"]["scripts"] == {"billing": "billing.cli:main"}
    assert pyproject["project"]["description"] == DESCRIPTION
    assert sorted(path.name for path in (service / "src").iterdir()) == ["billing", "core"]
    assert 'env_prefix="BILLING_"' in (service / "src/billing/settings.py").read_text()
    answers = (service / ".copier-answers.yml").read_text()
    assert "service_name: billing" in answers
    assert "_commit:" in answers
    readme = (service / "README.md").read_text()
    assert readme.startswith("# billing-service\n")
    assert DESCRIPTION in readme
    assert "Generating a service" not in readme  # the template's own section
    assert not (service / "copier.yml").exists()
    assert not (service / "scripts" / "generator").exists()


@WITHOUT_EXAMPLE
def test_without_the_example_only_the_core_and_an_empty_layout_remain(
    without_example: Path,
) -> None:
    package = without_example / "src/billing"
    layers = ("models", "schemas", "repositories", "services", "routes", "clients", "consumers")
    for layer in layers:
        assert [path.name for path in (package / layer).glob("*.py")] == ["__init__.py"], layer
    tables = {row["table"] for row in json.loads((without_example / "m2m/tables.json").read_text())}
    assert tables == {
        "outbox_events",
        "outbox_key_holds",
        "outbox_dead_events",
        "inbox_events",
        "idempotency_keys",
        "alembic_version",
    }
    events = json.loads((without_example / "m2m/events.json").read_text())
    assert events == {"consumed": [], "published": []}
    assert not (without_example / "docs" / "walkthrough.md").exists()
    assert "docs/walkthrough.md" not in (without_example / "README.md").read_text()


@WITHOUT_EXAMPLE
def test_without_the_example_no_orders_is_left_in_the_code(without_example: Path) -> None:
    leftovers = [
        f"{path.relative_to(without_example)}:{number}: {line.strip()}"
        for pattern in SERVICE_FILES
        for path in sorted(without_example.glob(pattern))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(orders|Orders|ORDERS)\b", line)
    ]
    assert leftovers == []


@WITH_EXAMPLE
def test_with_the_example_lint_and_the_service_tests_pass(with_example: Path) -> None:
    """The example's other tests are this repository's own, renamed: this suite runs them."""
    assert "acme.billing.order.placed.v1" in (with_example / "m2m/events.json").read_text()
    run(["make", "lint"], with_example)
    run(["scripts/test-tools"], with_example)
    pytest = ["uv", "run", "--frozen", "pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"]
    tests = ["tests/billing", "tests/test_m2m.py", "tests/test_migrations.py"]
    run([*pytest, *tests], with_example, timeout=1200)
    run([*pytest, "tests/test_docs.py", "tests/test_doc_claims.py"], with_example)


@WITHOUT_EXAMPLE
def test_without_the_example_the_readme_test_command_passes(without_example: Path) -> None:
    """`make check`: lint, then the whole suite with its coverage gate."""
    run(["make", "check"], without_example, timeout=1800)


def test_a_name_that_is_not_an_identifier_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "copier", "copy", "--trust", "--defaults"),
            *("--data", "service_name=Billing-2", str(TEMPLATE), str(tmp_path / "billing")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "lowercase letters and digits" in result.stdout + result.stderr
    assert not (tmp_path / "billing").exists()
