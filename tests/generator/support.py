"""Generating services from this repository with copier, as a user does."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2]
DESCRIPTION = "Invoices customers and keeps their balances."
# The tests of one generated service share its tree: its group keeps them on one worker, one
# after another (`--dist loadgroup`), while the other variant's run beside them.
WITH_EXAMPLE = pytest.mark.xdist_group("with_example")
WITHOUT_EXAMPLE = pytest.mark.xdist_group("without_example")
VARIANTS = [
    pytest.param("with_example", marks=WITH_EXAMPLE, id="with-example"),
    pytest.param("without_example", marks=WITHOUT_EXAMPLE, id="without-example"),
]


def environment() -> dict[str, str]:
    """The generated service's commands get its own .venv and settings, not this run's; checkov,
    locked alike in every service, is installed once for the run, in this repository; the
    drills run at their smaller size."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "VIRTUAL_ENV" and not key.startswith(("ORDERS_", "BILLING_", "COV_", "COVERAGE"))
    } | {
        "UV_PYTHON_DOWNLOADS": "never",
        "CHECKOV_ENVIRONMENT": str(TEMPLATE / ".venv-checkov"),
        "DRILLS": "small",  # the drills' full size is proven by this run's own slow phase
    }


def run(command: list[str], cwd: Path, timeout: float = 900) -> str:
    """Run a command in the generated service; its output is the failure message."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)}\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return result.stdout


def copier(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "copier", *args, "--trust", "--defaults", "--quiet"], cwd)


def generate(
    destination: Path, *data: str, template: Path = TEMPLATE, ref: str | None = None
) -> Path:
    """`copier copy` of the template into destination/billing, then a first commit there."""
    service = destination / "billing"
    options = [f"--data={item}" for item in ("service_name=billing", *data)]
    if ref is not None:
        options.append(f"--vcs-ref={ref}")
    copier("copy", *options, str(template), str(service), cwd=destination)
    commit_all(service, "generated")
    return service


def commit_all(repository: Path, message: str) -> None:
    if not (repository / ".git").exists():
        run(["git", "init", "--quiet"], repository)
    run(["git", "add", "--all"], repository)
    run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            message,
        ],
        repository,
    )


@contextmanager
def added_resource(service: Path, name: str) -> Iterator[str]:
    """`make resource name=NAME` in the service, its output; the tree is as generated after."""
    try:
        yield run(["make", "resource", f"name={name}"], service)
    finally:
        # Ignored files (.venv, caches) stay: they are what the next command reuses.
        run(["git", "reset", "--hard", "--quiet"], service)
        run(["git", "clean", "-d", "--force", "--quiet"], service)
