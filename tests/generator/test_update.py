"""`copier update`: a service generated from an earlier template version, changed locally,
moves to the current version; the template's change arrives and the local one stays."""

import subprocess
from pathlib import Path

import pytest

from tests.generator.support import TEMPLATE, commit_all, copier, generate, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("update")]

# The repository carries no release tags: a temporary clone gets two. The earlier version is
# the current one without a comment the publisher process gained (a change the update must
# bring, inside the renamed package).
TEMPLATE_CHANGE = (
    "    # Expired Idempotency-Keys go too: the publisher is the service's background worker.\n"
)
LOCAL_CHANGE = '"""The outbox publisher process, tuned for the volumes of billing."""'


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("template") / "template"
    subprocess.run(["git", "clone", "--quiet", str(TEMPLATE), str(clone)], check=True)
    run(["git", "tag", "v99.1.0"], clone)
    worker = clone / "src/orders/worker.py"
    text = worker.read_text()
    assert TEMPLATE_CHANGE in text
    run(["git", "checkout", "--quiet", "-b", "earlier"], clone)
    worker.write_text(text.replace(TEMPLATE_CHANGE, ""))
    commit_all(clone, "an earlier template version")
    run(["git", "tag", "v99.0.0"], clone)
    run(["git", "checkout", "--quiet", "v99.1.0"], clone)
    return clone


@pytest.fixture(scope="module")
def updated(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    service = generate(tmp_path_factory.mktemp("generated"), template=template, ref="v99.0.0")
    worker = service / "src/billing/worker.py"
    assert TEMPLATE_CHANGE not in worker.read_text()
    lines = worker.read_text().splitlines(keepends=True)
    # The module docstring is the first two lines; the service rewrites it as its own.
    worker.write_text(LOCAL_CHANGE + "\n" + "".join(lines[2:]))
    (service / "tests/billing/test_local.py").write_text(
        '"""A test the service added."""\n\nimport inspect\n\n'
        "from billing.worker import run_publisher\n\n\n"
        "def test_the_publisher_is_a_coroutine_function() -> None:\n"
        "    assert inspect.iscoroutinefunction(run_publisher)\n"
    )
    commit_all(service, "billing's own changes")
    copier("update", "--vcs-ref=v99.1.0", cwd=service)
    return service


def test_the_update_brings_the_template_change_and_keeps_the_local_ones(updated: Path) -> None:
    worker = (updated / "src/billing/worker.py").read_text()
    assert TEMPLATE_CHANGE in worker
    assert worker.startswith(LOCAL_CHANGE)
    assert (updated / "tests/billing/test_local.py").exists()
    assert "_commit: v99.1.0" in (updated / ".copier-answers.yml").read_text()
    conflicts = run(["git", "status", "--porcelain"], updated)
    assert ".rej" not in conflicts
    assert "<<<<<<<" not in run(["git", "diff"], updated)


def test_the_updated_service_passes_its_lint_and_tests(updated: Path) -> None:
    uv = ["uv", "run", "--frozen"]
    run([*uv, "ruff", "check", "."], updated)
    run([*uv, "ruff", "format", "--check", "."], updated)
    run([*uv, "mypy"], updated)
    run([*uv, "lint-imports"], updated)
    run(["scripts/test-tools"], updated)
    tests = ["tests/billing/test_local.py", "tests/billing/test_processes.py", "tests/test_m2m.py"]
    run([*uv, "pytest", "-q", "-p", "no:cacheprovider", *tests], updated)
