"""The image and compose run the same commands the tests run, through the same entry points."""

import re
from pathlib import Path

import pytest

from delivery_checks import cli_help
from orders.settings import SERVICE
from tests.delivery.support import REPO, copy_of_repo, delivery_check, replace_in

AWAITED = ("publish", "consume")  # compose runs them; another change adds them to the CLI


def with_copies(tmp_path: Path) -> Path:
    return copy_of_repo(tmp_path, "Dockerfile", "compose.yml", "compose-dev.yml", "tests")


def defined_subcommands() -> set[str]:
    found = re.search(r"\{([\w,-]+)\}", cli_help())
    assert found
    return set(found[1].split(","))


def test_every_command_the_image_and_compose_run_is_one_the_tests_run() -> None:
    status, output = delivery_check(REPO, "commands")
    assert status == 0, output
    assert "commands: ok" in output


@pytest.mark.parametrize("subcommand", AWAITED)
def test_an_awaited_subcommand_is_named_until_the_cli_defines_it(subcommand: str) -> None:
    status, output = delivery_check(REPO, "commands")
    strict_status, strict_output = delivery_check(REPO, "commands", strict=True)
    assert status == 0, output  # awaited or not, without --strict it is a note, not a failure
    defined = defined_subcommands()
    if subcommand in defined:  # landed: checked like the others
        assert f"`orders {subcommand}` (" not in output
        assert f"`orders {subcommand}` is not a subcommand" not in strict_output
        if defined >= set(AWAITED):  # nothing is awaited any more: --strict passes too
            assert strict_status == 0, strict_output
    else:
        assert (
            f"awaited: compose.yml {'publisher' if subcommand == 'publish' else 'consumer'}"
            in output
        )
        assert strict_status == 1
        assert f"`orders {subcommand}` is not a subcommand" in strict_output


@pytest.mark.parametrize(
    ("file", "old", "new", "reported"),
    [
        (
            "compose.yml",
            'command: ["orders", "migrate"]',
            f'command: ["{SERVICE}", "migrat"]',
            f"compose.yml migrate: `{SERVICE} migrat` is not a subcommand",
        ),
        (
            "Dockerfile",
            'CMD ["orders", "serve"]',
            'CMD ["uvicorn", "orders.main:app"]',
            "Dockerfile CMD: no test builds the app from `orders.main:app`",
        ),
        (
            "compose-dev.yml",
            "      - orders.main:create_app\n",
            "      - orders.main:build\n",
            "compose-dev.yml api: no test builds the app from `orders.main:build`",
        ),
        (
            "compose.yml",
            'command: ["orders", "serve"]',
            'command: ["sh", "-c", "orders serve"]',
            "compose.yml api: runs `sh -c 'orders serve'`, which no test runs",
        ),
    ],
    ids=["unknown-subcommand", "other-app-in-image", "other-factory-in-dev", "shell"],
)
def test_a_command_the_tests_do_not_run_fails_the_check(
    tmp_path: Path, file: str, old: str, new: str, reported: str
) -> None:
    root = with_copies(tmp_path)
    replace_in(root / file, old, new)
    status, output = delivery_check(root, "commands")
    assert status == 1
    assert reported in output


def test_a_subcommand_no_test_runs_fails_the_check(tmp_path: Path) -> None:
    root = with_copies(tmp_path)
    # The tests that run `serve`:
    for runs_serve in ("conftest.py", "test_fuzz.py", "test_server.py", "test_server_drain.py"):
        (root / "tests" / SERVICE / runs_serve).unlink(missing_ok=True)
    for runs_serve in ("core/test_metrics.py", "delivery/test_healthchecks.py"):
        (root / "tests" / runs_serve).unlink(missing_ok=True)
    status, output = delivery_check(root, "commands")
    assert status == 1
    assert "Dockerfile CMD: no test runs `orders serve`" in output
    assert "compose.yml api: no test runs `orders serve`" in output


def test_a_test_running_the_cli_main_counts(tmp_path: Path) -> None:
    root = with_copies(tmp_path)
    (root / "tests" / SERVICE / "conftest.py").unlink()
    (root / "tests" / "test_cli.py").write_text(
        'from orders.cli import main\n\n\ndef test_serves() -> None:\n    main(["serve"])\n'
    )
    status, output = delivery_check(root, "commands")
    assert status == 0, output
