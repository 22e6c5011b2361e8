"""`make test`'s phases (scripts/test_phases.py), run on a small project of their own: every
phase's verdict and time, the slowest tests, one coverage gate, and an exit status that fails
when any phase does, a phase that collects nothing included."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import test_phases

PYPROJECT = """
[tool.pytest.ini_options]
markers = ["slow: a drill"]
[tool.coverage.run]
branch = true
source = ["src", "scripts"]
[tool.coverage.report]
fail_under = 100
"""
DEFAULT = """
import sys
sys.path[:0] = ["src", "scripts"]
import tool, helper

def test_the_tool_answers():
    assert tool.answer() == 42 and helper.HELPED
"""
SLOW = "import pytest\n\n@pytest.mark.slow\ndef test_a_drill():\n    assert True\n"


def project(root: Path, **tests: str) -> Path:
    for path, text in {
        "pyproject.toml": PYPROJECT,
        "src/tool.py": "def answer():\n    return 42\n",
        "scripts/helper.py": "HELPED = True\n",
        **{f"tests/{name}.py": body for name, body in tests.items()},
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def phases(root: Path, *names: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, test_phases.__file__, "--root", str(root), *names],
        env={**os.environ, "TEST_WORKERS": "0"},  # in process: xdist's workers cost seconds each
        capture_output=True,
        text=True,
        timeout=600,  # a bound for a loaded machine, not a speed goal
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def verdicts(output: str) -> dict[str, str]:
    """The closing summary: phase name -> verdict."""
    summary = output[output.index("=== phases") :].splitlines()[1:]
    found = (re.fullmatch(r"(\w+) +[\d.]+ s  (.+)", line) for line in summary)
    return {match[1]: match[2] for match in found if match}


@pytest.mark.slow
def test_every_phase_is_timed_and_the_slowest_tests_listed(tmp_path: Path) -> None:
    status, output = phases(project(tmp_path, test_default=DEFAULT, test_slow=SLOW))
    assert status == 0, output
    assert verdicts(output) == {
        "default": "ok",
        "slow": "ok",
        "generated": "skipped: no tests/generator here",
        "containers": "skipped: no tests/delivery/test_containers.py here",
        "coverage": "ok",
    }
    assert "[default] tests.test_default::test_the_tool_answers" in output
    assert "[slow] tests.test_slow::test_a_drill" in output


@pytest.mark.slow
def test_a_phase_that_collects_nothing_fails_the_run(tmp_path: Path) -> None:
    status, output = phases(project(tmp_path, test_default=DEFAULT), "default", "slow")
    assert status == 1, output
    assert verdicts(output)["slow"] == "FAILED: collected no tests"


@pytest.mark.slow
def test_a_failing_test_or_coverage_under_the_gate_fails_the_run(tmp_path: Path) -> None:
    failing = DEFAULT.replace("== 42", "== 41")
    status, output = phases(project(tmp_path, test_default=failing, test_slow=SLOW))
    assert status == 1, output
    # The other phases ran all the same (coverage is not what this one is about).
    assert verdicts(output) | {"coverage": "-"} == {
        "default": "FAILED: exit status 1",
        "slow": "ok",
        "generated": "skipped: no tests/generator here",
        "containers": "skipped: no tests/delivery/test_containers.py here",
        "coverage": "-",
    }
    assert "=== failed tests\n[default] tests.test_default::test_the_tool_answers" in output

    status, output = phases(project(tmp_path / "uncovered", test_slow=SLOW), "slow")
    assert status == 1, output
    assert verdicts(output)["coverage"] == "FAILED: src, scripts under the floor or unmeasured"
