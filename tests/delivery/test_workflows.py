"""The CI workflow and Dependabot: linted, least-privileged, and running what `make` runs."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.support import (
    REPO,
    copy_of_repo,
    delivery_check,
    make_variable,
    recipe,
    replace_in,
)

WORKFLOW: dict[str, Any] = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())


def test_the_workflows_pass_actionlint_and_dependabot_its_schema() -> None:
    status, output = delivery_check(REPO, "workflows")
    assert status == 0, output
    assert "workflows: ok" in output


@pytest.mark.parametrize(
    ("file", "old", "new", "reported"),
    [
        (
            ".github/workflows/ci.yml",
            "    timeout-minutes: 15\n",
            "    timeout-minutes: 15\n    timeout: 15\n",
            'unexpected key "timeout" for "job" section',
        ),
        (
            ".github/workflows/ci.yml",
            "actions/checkout@v7",
            "actions/checkout@v4",
            'runtime "node20" is deprecated',
        ),
        (
            ".github/workflows/ci.yml",
            '"$GITHUB_OUTPUT"',
            "$GITHUB_OUTPUT",
            "SC2086",
        ),
        (
            ".github/dependabot.yml",
            "package-ecosystem: docker-compose",
            "package-ecosystem: compose",
            "'compose' is not one of",
        ),
    ],
    ids=["invalid-key", "old-action", "shell-quoting", "dependabot-ecosystem"],
)
def test_a_broken_workflow_or_dependabot_file_fails_the_check(
    tmp_path: Path, file: str, old: str, new: str, reported: str
) -> None:
    root = copy_of_repo(tmp_path, ".github")
    replace_in(root / file, old, new)
    status, output = delivery_check(root, "workflows")
    assert status == 1
    assert reported in output


def test_the_workflow_token_can_only_read() -> None:
    assert WORKFLOW["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in WORKFLOW["jobs"].values())


def test_a_newer_run_cancels_the_superseded_one() -> None:
    assert WORKFLOW["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in WORKFLOW["concurrency"]["group"]


def test_every_action_is_pinned_to_a_major_version_and_uv_caches() -> None:
    steps = [step for job in WORKFLOW["jobs"].values() for step in job["steps"]]
    actions = [step["uses"] for step in steps if "uses" in step]
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@(v\d+|[0-9a-f]{40})", uses) for uses in actions)
    uv_steps = [step for step in steps if step.get("uses", "").startswith("astral-sh/setup-uv@")]
    assert uv_steps
    assert all(step["with"]["enable-cache"] is True for step in uv_steps)


def test_ci_runs_every_command_of_make_lint_and_make_test() -> None:
    runs = {
        line.strip()
        for job in WORKFLOW["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    }
    for target in ("lint", "test"):
        for command in recipe(target):
            assert command.replace("$(RUN)", "uv run --frozen") in runs, command
    skipped = next(step for step in WORKFLOW["jobs"]["lint"]["steps"] if "env" in step)
    assert skipped["env"]["SKIP"] == make_variable("lint", "SKIP")


def test_dependabot_updates_the_lock_the_actions_and_the_images() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"] for update in config["updates"]}
    assert ecosystems == {"uv", "github-actions", "docker", "docker-compose"}
