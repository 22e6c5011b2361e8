"""`make install` on a machine without uv: it installs one where pip may not touch the system
Python, and says what is missing where it cannot."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orders.settings import SERVICE
from tests.delivery.support import copy_of_repo

# What `make install` reads: the Makefile, its scripts, the project and its lock.
PROJECT = (
    "Makefile",
    "scripts/find-uv",
    "pyproject.toml",
    "uv.lock",
    ".python-version",
    "README.md",
    "src",
)
SYSTEM_PYTHON = Path("/usr/bin/python3")


def externally_managed(python: Path) -> bool:
    """Whether pip refuses to install into this Python (PEP 668's marker in its stdlib)."""
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").exists()


def make_install(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    """`make install` in a copy of the project, with only `path` to find programs on."""
    project = copy_of_repo(tmp_path / "project", *PROJECT)
    # The machine's settings (certificates, package index) stay; no uv or virtualenv leaks in.
    inherited = {k: v for k, v in os.environ.items() if k not in {"UV", "VIRTUAL_ENV"}}
    environment = {**inherited, "PATH": path, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    return subprocess.run(
        ["make", "-C", str(project), "install"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_make_install_brings_uv_where_the_system_python_forbids_pip(tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists() or not externally_managed(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is not an externally managed Python on this machine")
    # The project's Python (3.13) is found by its versioned name; `python3` is the system one.
    interpreters = tmp_path / "interpreters"
    interpreters.mkdir()
    (interpreters / "python3.13").symlink_to(Path(sys.executable).resolve())
    refused = subprocess.run(
        [SYSTEM_PYTHON, "-m", "pip", "install", "--dry-run", "uv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr

    done = make_install(tmp_path, f"{interpreters}:/usr/bin:/bin")

    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "project" / ".tools" / "bin" / "uv").is_file()
    assert (tmp_path / "venv" / "bin" / SERVICE).is_file()


def test_make_install_names_what_is_missing_when_uv_cannot_be_installed(tmp_path: Path) -> None:
    # A python3 without pip, and no uv anywhere on PATH.
    tools = tmp_path / "tools"
    tools.mkdir()
    for program in ("bash", "make", "realpath", "dirname"):
        (tools / program).symlink_to(Path("/usr/bin", program).resolve())
    python3 = tools / "python3"
    python3.write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    python3.chmod(0o755)

    done = make_install(tmp_path, str(tools))

    assert done.returncode != 0
    assert "uv is missing" in done.stderr
    assert "python3-pip" in done.stderr
    assert "https://docs.astral.sh/uv/getting-started/installation/" in done.stderr
    assert "unrecognized option" not in done.stdout + done.stderr
