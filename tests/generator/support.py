"""Generating services from this repository with copier, as a user does."""

import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    """The generated service's commands get its own .venv and settings, not this run's."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "VIRTUAL_ENV" and not key.startswith(("ORDERS_", "BILLING_", "COV_", "COVERAGE"))
    } | {"UV_PYTHON_DOWNLOADS": "never"}


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
