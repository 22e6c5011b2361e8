"""The README's Docker section and docs/containers.md name the services, commands and ports
the compose files have."""

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.support import REPO

COMPOSE_FILES = ("compose.yml", "compose-dev.yml")


def docker_section(readme: str) -> str:
    return readme.split("## Docker\n", 1)[1].split("\n## ", 1)[0]


def readme_rows(section: str) -> set[tuple[str, ...]]:
    rows: set[tuple[str, ...]] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            rows.add(tuple(cells))
    return rows


def compose_rows() -> set[tuple[str, ...]]:
    """(service, file, command, published on, profile) for every service a file defines,
    and for every override that changes its command or ports."""
    rows: set[tuple[str, ...]] = set()
    for name in COMPOSE_FILES:
        services: dict[str, Any] = yaml.safe_load((REPO / name).read_text())["services"]
        for service, spec in services.items():
            defines = name == "compose.yml" or {"image", "build"} & spec.keys()
            if not (defines or {"command", "ports"} & spec.keys()):
                continue
            command = spec.get("command", "image default" if defines else "")
            ports = ", ".join(port.rsplit(":", 1)[0] for port in spec.get("ports", []))
            profiles = ", ".join(spec.get("profiles", []))
            shown = command if isinstance(command, str) else shlex.join(command)
            rows.add((service, name, shown, ports, profiles))
    return rows


def test_the_docker_table_matches_the_compose_files() -> None:
    assert readme_rows((REPO / "docs" / "containers.md").read_text()) == compose_rows()


def test_a_renamed_service_makes_them_disagree() -> None:
    table = (REPO / "docs" / "containers.md").read_text().replace("| `publisher` |", "| `outbox` |")
    assert readme_rows(table) != compose_rows()


def readme_compose_commands() -> list[list[str]]:
    section = docker_section((REPO / "README.md").read_text())
    script = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in script.splitlines()]
    return [argv for argv in commands if argv[:2] == ["docker", "compose"] and "up" in argv]


@pytest.mark.parametrize("argv", readme_compose_commands(), ids=lambda argv: " ".join(argv[2:]))
def test_the_readme_compose_commands_are_valid_for_these_files(argv: list[str]) -> None:
    """The same arguments, `up` swapped for `config`: files, profiles and references resolve."""
    options = argv[2 : argv.index("up")]
    assert options[:4] == ["-f", "compose.yml", "-f", "compose-dev.yml"]
    compose = Path(sys.executable).parent / "docker-compose"
    result = subprocess.run(
        [compose, *options, "config", "--services"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"migrate", "api", "publisher", "consumer", "postgres", "redis"} <= services
    assert ("prometheus" in services) is ("--profile" in options)
