"""pre-commit runs only local hooks with locked tools, and `make lint` runs every one of them."""

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.support import REPO, make_variable, recipe

LOCKED = "scripts/uv run --frozen "
HOOKS: list[dict[str, Any]] = [
    hook
    for repo in yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"]
    for hook in repo["hooks"]
]


def hook(hook_id: str) -> dict[str, Any]:
    return next(hook for hook in HOOKS if hook["id"] == hook_id)


def run_hook_tool(hook_id: str, *arguments: str) -> int:
    """The hook's command with the locked tool of this environment, as `uv run` resolves it."""
    tool, *options = shlex.split(hook(hook_id)["entry"].removeprefix(LOCKED))
    executable = Path(sys.executable).parent / tool
    result = subprocess.run(
        [executable, *options, *arguments], capture_output=True, text=True, check=False
    )
    return result.returncode


def test_every_hook_is_local_and_runs_a_locked_tool() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    for each in HOOKS:
        assert each["language"] == "system", each["id"]
        assert each["entry"].startswith(LOCKED), each["id"]


def test_make_lint_runs_every_pre_commit_hook() -> None:
    """Hooks that fix files are skipped by pre-commit in `make lint`, which runs them as checks."""
    commands = [shlex.split(line.replace("$(RUN) ", "")) for line in recipe("lint")]
    assert ["pre-commit", "run", "--all-files", "--show-diff-on-failure"] in commands
    for skipped in make_variable("lint", "SKIP").split(","):
        entry = shlex.split(hook(skipped)["entry"].removeprefix(LOCKED))
        wanted = [word for word in entry if not word.startswith("-")]
        runs = [[w for w in command if not w.startswith("-") and w != "."] for command in commands]
        # `ruff check --fix` is covered by `ruff check .`, a `delivery_checks.py dockerfile`
        # hook by `delivery_checks.py` running every check.
        assert any(wanted[: len(run)] == run for run in runs), f"make lint skips {skipped}"


def test_the_commit_message_must_be_conventional(tmp_path: Path) -> None:
    assert hook("conventional-commit")["stages"] == ["commit-msg"]
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("build: pin the base image\n")
    bad.write_text("updated some files\n")
    assert run_hook_tool("conventional-commit", str(good)) == 0
    assert run_hook_tool("conventional-commit", str(bad)) != 0


def test_the_secrets_scan_refuses_a_key(tmp_path: Path) -> None:
    leaked = tmp_path / "settings.env"
    leaked.write_text("aws_access_key_id = " + "AKIA" + "IOSFODNN7EXAMPLE\n")
    clean = tmp_path / "clean.env"
    clean.write_text("ORDERS_SERVER__PORT=8000\n")
    assert run_hook_tool("detect-secrets", str(clean)) == 0
    assert run_hook_tool("detect-secrets", str(leaked)) != 0


@pytest.mark.parametrize(("arguments", "status"), [(["dockerfile"], 0), (["lint"], 2)])
def test_the_delivery_script_runs_from_the_command_line(arguments: list[str], status: int) -> None:
    result = subprocess.run(
        [sys.executable, REPO / "scripts" / "delivery_checks.py", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == status, result.stdout + result.stderr
    assert ("dockerfile: ok" in result.stdout) is (status == 0)
