"""compose.yml and compose-dev.yml, as the Compose binary resolves them, without a daemon."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.support import REPO, copy_of_repo, delivery_check, replace_in

IMAGE_SERVICES = ("migrate", "api", "publisher", "consumer")


def resolved(*files: str) -> dict[str, Any]:
    """`docker-compose config` of the files, every profile on, as JSON."""
    compose = Path(sys.executable).parent / "docker-compose"
    named = [option for name in files for option in ("-f", name)]
    result = subprocess.run(
        [compose, *named, "--profile", "*", "config", "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    config: dict[str, Any] = json.loads(result.stdout)
    return config


PRODUCTION = resolved("compose.yml")["services"]
DEVELOPMENT = resolved("compose.yml", "compose-dev.yml")["services"]


def test_the_compose_files_pass_compose_config() -> None:
    status, output = delivery_check(REPO, "compose")
    assert status == 0, output
    assert "compose: ok" in output


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        (
            "compose.yml",
            "    depends_on:\n      migrate:\n",
            "    depends_on:\n      migrations:\n",
        ),
        (
            "compose-dev.yml",
            "      prometheus:\n        condition: service_healthy",
            "      prometheus-server:\n        condition: service_healthy",
        ),
    ],
    ids=["production", "development"],
)
def test_depends_on_a_missing_service_fails_the_check(
    tmp_path: Path, file: str, old: str, new: str
) -> None:
    root = copy_of_repo(tmp_path, "compose.yml", "compose-dev.yml")
    replace_in(root / file, old, new)
    status, output = delivery_check(root, "compose")
    assert status == 1
    assert "depends on undefined service" in output


def test_no_compose_file_has_a_version_key() -> None:
    for name in ("compose.yml", "compose-dev.yml"):
        assert "version" not in yaml.safe_load((REPO / name).read_text())


def test_the_image_runs_as_four_services_from_one_build() -> None:
    images = {PRODUCTION[name]["image"] for name in IMAGE_SERVICES}
    assert len(images) == 1
    assert all(PRODUCTION[name]["build"]["context"] == str(REPO) for name in IMAGE_SERVICES)


def test_migrate_runs_once_and_the_others_start_after_it_succeeded() -> None:
    assert PRODUCTION["migrate"]["restart"] == "no"
    for name in ("api", "publisher", "consumer"):
        condition = PRODUCTION[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


@pytest.mark.parametrize("name", IMAGE_SERVICES)
def test_each_service_has_a_healthcheck_a_restart_policy_and_limits(name: str) -> None:
    service = PRODUCTION[name]
    assert "healthcheck" in service, "a one-shot disables it explicitly"
    assert service["restart"] in {"no", "unless-stopped"}
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"]
    assert limits["memory"]
    assert service["init"] is True, "signals forwarded, children reaped"
    assert service["read_only"] is True


def test_the_api_listens_on_all_interfaces_inside_its_container() -> None:
    environment = PRODUCTION["api"]["environment"]
    assert environment["ORDERS_SERVER__HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    assert environment["ORDERS_SERVER__PORT"] == "8000"


def test_configuration_comes_from_an_optional_env_file() -> None:
    raw = yaml.safe_load((REPO / "compose.yml").read_text())["services"]
    for name in IMAGE_SERVICES:
        assert raw[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_development_publishes_on_localhost_only() -> None:
    published = [port for service in DEVELOPMENT.values() for port in service.get("ports", [])]
    assert published
    assert {port["host_ip"] for port in published} == {"127.0.0.1"}
    assert not any(service.get("ports") for service in PRODUCTION.values())


def test_development_infrastructure_is_pinned_healthy_and_persistent() -> None:
    for name in ("postgres", "redis"):
        service = DEVELOPMENT[name]
        tag = service["image"].split(":", 1)[1]
        assert tag[0].isdigit(), f"{name} pinned to a version tag, not {tag!r}"
        assert service["healthcheck"]["test"]
        assert [volume["type"] for volume in service["volumes"]] == ["volume"]
    assert DEVELOPMENT["redis"]["command"][1:3] == ["--appendonly", "yes"]
    for name in IMAGE_SERVICES:
        needed = DEVELOPMENT[name]["depends_on"]
        assert needed["postgres"]["condition"] == "service_healthy", name
        assert needed["redis"]["condition"] == "service_healthy", name


def test_development_api_reloads_from_the_mounted_source() -> None:
    api = DEVELOPMENT["api"]
    assert "--reload" in api["command"]
    assert {(v["source"], v["target"]) for v in api["volumes"]} == {(str(REPO / "src"), "/app/src")}
    assert api["environment"]["PYTHONPATH"] == "/app/src"


def test_observability_is_opt_in_and_its_files_exist() -> None:
    without_profile = resolved_services_without_profiles()
    for name in ("prometheus", "grafana"):
        assert DEVELOPMENT[name]["profiles"] == ["observability"]
        assert name not in without_profile
        for volume in DEVELOPMENT[name]["volumes"]:
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), volume["source"]
    prometheus = yaml.safe_load((REPO / "observability" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["api:8000"]


def resolved_services_without_profiles() -> set[str]:
    compose = Path(sys.executable).parent / "docker-compose"
    result = subprocess.run(
        [compose, "-f", "compose.yml", "-f", "compose-dev.yml", "config", "--services"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split())


def test_ci_tests_against_the_postgres_and_redis_that_development_runs() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    services = workflow["jobs"]["test"]["services"]
    assert services["postgres"]["image"] == DEVELOPMENT["postgres"]["image"]
    assert services["redis"]["image"] == DEVELOPMENT["redis"]["image"]
