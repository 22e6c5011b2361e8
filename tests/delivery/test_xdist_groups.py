"""`--dist loadgroup` keeps a group's tests on one worker: the generated services' tests share
their tree and the fuzz run counts its requests in one process, and both rely on it. Run on a
small project of its own, with the pytest and pytest-xdist this repository locks."""

import os
import subprocess
import sys
from pathlib import Path

GROUPED = """
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("shared")


@pytest.mark.parametrize("n", range(6))
def test_grouped(n):
    with (Path(os.environ["WORKERS_SEEN"]) / f"{__name__}-{n}").open("w") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"])
"""
UNGROUPED = """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_ungrouped(n):
    pass
"""


def test_a_groups_tests_run_on_one_worker(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    for name, text in {"test_a": GROUPED, "test_b": GROUPED, "test_c": UNGROUPED}.items():
        (tmp_path / f"{name}.py").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cov"],
        cwd=tmp_path,
        env={**os.environ, "WORKERS_SEEN": str(seen)},
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a loaded machine, not a speed goal
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = {path.name: path.read_text() for path in seen.iterdir()}
    assert len(workers) == 12, workers
    assert len(set(workers.values())) == 1, workers
