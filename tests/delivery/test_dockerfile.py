"""The Dockerfile: linted, its final stage lean and unprivileged, its build stamps on /health."""

import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.delivery.support import REPO, copy_of_repo, delivery_check, replace_in
from tests.support import serve_in_process


def stages(text: str) -> list[list[str]]:
    """Each stage's instructions, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    found: list[list[str]] = []
    for instruction in instructions:
        if instruction.upper().startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


FINAL = stages((REPO / "Dockerfile").read_text())[-1]


def instructions(keyword: str, stage: list[str] = FINAL) -> list[str]:
    return [i.split(maxsplit=1)[1] for i in stage if i.split(maxsplit=1)[0].upper() == keyword]


def test_the_dockerfile_passes_hadolint_and_the_image_rules() -> None:
    status, output = delivery_check(REPO, "dockerfile")
    assert status == 0, output
    assert "dockerfile: ok" in output


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    uid, _, gid = instructions("USER")[-1].partition(":")
    assert uid.isdigit(), "a numeric uid, which runAsNonRoot can verify"
    assert gid.isdigit()
    assert int(uid) != 0


def test_the_final_stage_has_no_compiler_and_no_dev_dependencies() -> None:
    base = instructions("FROM")[0].split()[0]
    assert base.startswith("python:3.13."), "Python 3.13 pinned to a patch release"
    assert base.endswith("-slim-trixie"), "the slim image: no compiler, no build tools"
    assert instructions("RUN") == [], "nothing is installed in the final stage"
    copied = [shlex.split(value) for value in instructions("COPY") if "--from=" in value]
    assert [argv[1:] for argv in copied] == [["/app/.venv", "/app/.venv"]]
    every_sync = [value for stage in stages((REPO / "Dockerfile").read_text()) for value in stage]
    syncs = [value for value in every_sync if "uv sync" in value]
    assert len(syncs) == 2
    assert all("--frozen" in sync and "--no-dev" in sync for sync in syncs)


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        ("USER 10001:10001\n", "", "the final stage sets no USER"),
        ("USER 10001:10001", "USER root", "DL3002"),
        ("USER 10001:10001", "USER 0:0", "USER 0:0 is not a numeric non-root uid"),
        ("USER 10001:10001", "USER app", "USER app is not a numeric non-root uid"),
        (
            "WORKDIR /app\n",
            (
                "WORKDIR /app\nRUN apt-get update && apt-get install -y --no-install-recommends"
                " gcc=4:14.2.0-1 && rm -rf /var/lib/apt/lists/*\n"
            ),
            "the final stage installs build tools (gcc)",
        ),
        ("--frozen --no-dev --no-editable", "--frozen --no-editable", "without --frozen --no-dev"),
        ("COPY alembic.ini ./", "COPY --from=uv /uv /bin/uv\nCOPY alembic.ini ./", "copies /uv"),
        ('CMD ["orders", "serve"]', "CMD orders serve", "DL3025"),
        ("HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"),
    ],
    ids=[
        "no-user",
        "root",
        "uid-0",
        "named-user",
        "compiler",
        "dev-dependencies",
        "uv-in-final",
        "shell-form-cmd",
        "no-healthcheck",
    ],
)
def test_a_broken_dockerfile_fails_the_check(
    tmp_path: Path, old: str, new: str, reported: str
) -> None:
    root = copy_of_repo(tmp_path, "Dockerfile")
    replace_in(root / "Dockerfile", old, new)
    if old == "HEALTHCHECK":  # comment out its continuation line too
        replace_in(root / "Dockerfile", '\\\n    CMD ["python"', '\\\n#   CMD ["python"')
    status, output = delivery_check(root, "dockerfile")
    assert status == 1
    assert reported in output


async def test_build_args_become_what_health_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image built with --build-arg VERSION/COMMIT/BUILD_TIME names them on /health."""
    build_args = {"VERSION": "1.4.2", "COMMIT": "3b1f2c4", "BUILD_TIME": "2026-11-21T10:00:00Z"}
    environment = image_environment(build_args)
    assert environment["ORDERS_SERVER__HOST"] == "0.0.0.0"  # noqa: S104 - in the container
    health = await health_in(environment, monkeypatch)
    assert [health["version"], health["commit"], health["build_time"]] == [*build_args.values()]


async def test_an_image_built_without_args_reports_the_package_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    health = await health_in(image_environment({}), monkeypatch)
    assert health["version"] == project["version"]
    assert (health["commit"], health["build_time"]) == ("unknown", "unknown")


def image_environment(build_args: dict[str, str]) -> dict[str, str]:
    """The ORDERS_* variables the final stage's ENV sets, its ARGs resolved as Docker would."""
    values = dict(arg.split("=", 1) for arg in instructions("ARG"))
    values.update(build_args)
    environment = {}
    for value in instructions("ENV"):
        for assignment in shlex.split(value):
            name, _, raw = assignment.partition("=")
            environment[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], ""), raw)
    return {name: value for name, value in environment.items() if name.startswith("ORDERS_")}


async def health_in(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    async with serve_in_process(create_app(OrdersSettings())) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("src/orders/main.py", True),
        ("alembic/versions/20261121_2339_9dc5af575cc4_initial_schema.py", True),
        ("uv.lock", True),
        (".env", False),
        ("tests/conftest.py", False),
        (".venv/bin/python", False),
        ("src/orders/__pycache__/main.cpython-313.pyc", False),
        (".git/config", False),
        (".github/workflows/ci.yml", False),
    ],
)
def test_dockerignore_keeps_secrets_caches_and_tests_out_of_the_context(
    path: str, sent: bool
) -> None:
    assert in_build_context(path) is sent


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    candidates = [PurePosixPath(path), *PurePosixPath(path).parents[:-1]]
    included = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if any(candidate.full_match(pattern) for candidate in candidates):
            included = negated
    return included
