"""deploy/k8s: both overlays render, validate and hold to the rules; a broken copy fails."""

import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from orders.cli import GRACEFUL_SHUTDOWN_SECONDS, _parser
from orders.settings import SERVICE
from tests.delivery.support import REPO, copy_of_repo, delivery_check, replace_in

OVERLAYS = ("dev", "prod")
BASE = Path("deploy/k8s/base")
# One worker runs the checkov scans: they share one environment, which the first run installs.
CHECKOV = pytest.mark.xdist_group("checkov")
# Whole probes, as base/ spells them: removing one leaves valid YAML.
API_READINESS_PROBE = """\
          readinessProbe:
            httpGet:
              path: /health/ready
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
"""
CONSUMER_LIVENESS_PROBE = """\
          livenessProbe:
            httpGet:
              path: /metrics
              port: metrics
            periodSeconds: 15
            timeoutSeconds: 3
            failureThreshold: 3
"""
PROCESSES = {"orders-api": "serve", "orders-publisher": "publish", "orders-consumer": "consume"}


@cache
def rendered(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` of the overlay, with the kubectl the dev dependencies install."""
    kubectl = Path(sys.executable).parent / "kubectl"
    result = subprocess.run(
        [kubectl, "kustomize", f"deploy/k8s/overlays/{overlay}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return [manifest for manifest in yaml.safe_load_all(result.stdout) if manifest]


def find(overlay: str, kind: str, name: str) -> dict[str, Any]:
    return next(m for m in rendered(overlay) if (m["kind"], m["metadata"]["name"]) == (kind, name))


def container(overlay: str, kind: str, name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = find(overlay, kind, name)["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def config(overlay: str) -> dict[str, str]:
    maps = [m for m in rendered(overlay) if m["kind"] == "ConfigMap"]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


def test_both_overlays_render_validate_and_hold_to_the_rules() -> None:
    status, output = delivery_check(REPO, "kubernetes")
    assert status == 0, output
    assert "kubernetes: ok" in output


@pytest.mark.parametrize(
    ("file", "old", "new", "reported"),
    [
        (
            "api-deployment.yaml",
            API_READINESS_PROBE,
            "",
            "Deployment orders-api, container api: no readinessProbe",
        ),
        (
            "consumer-deployment.yaml",
            CONSUMER_LIVENESS_PROBE,
            "",
            "Deployment orders-consumer, container consumer: no livenessProbe",
        ),
        (
            "publisher-deployment.yaml",
            "runAsUser: 10001",
            "runAsUser: 0",
            "orders-publisher: runs as root: the pod's securityContext sets runAsUser: 0",
        ),
        (
            "migrate-job.yaml",
            "      securityContext:\n        runAsNonRoot: true\n",
            "      securityContext:\n        runAsNonRoot: false\n",
            "Job orders-migrate: runs as root: the pod's securityContext lacks runAsNonRoot: true",
        ),
        (
            "api-deployment.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            "container api: has a writable root filesystem",
        ),
        (
            "api-deployment.yaml",
            "path: /health/ready",
            "path: /health",
            "the readinessProbe of `orders serve` must ask /health/ready",
        ),
        (
            "settings.env",
            "ORDERS_OUTBOX__BATCH_SIZE=100\n",
            "",
            "ORDERS_OUTBOX__BATCH_SIZE is missing",
        ),
        (
            "settings.env",
            "ORDERS_OUTBOX__BATCH_SIZE=",
            "ORDERS_OUTBOX_BATCH_SIZE=",
            "ORDERS_OUTBOX_BATCH_SIZE is not a setting of the service",
        ),
        (
            "settings.env",
            "ORDERS_DATABASE__PORT=5432\n",
            "ORDERS_DATABASE__PORT=5432\nORDERS_DATABASE__PASSWORD=\n",
            "ORDERS_DATABASE__PASSWORD belongs in the Secret orders-secrets",
        ),
        (
            "api-pdb.yaml",
            "  maxUnavailable: 1",
            "  maxUnavailabel: 1",
            "PodDisruptionBudget orders-api, Kubernetes 1.30.0: spec: Additional properties",
        ),
        (
            "kustomization.yaml",
            "  - api-pdb.yaml\n",
            "  - api-pdb.yaml\n  - worker-pdb.yaml\n",
            "`kubectl kustomize` failed",
        ),
    ],
    ids=[
        "no-readiness-probe",
        "no-liveness-probe",
        "uid-0",
        "run-as-root-allowed",
        "writable-root",
        "readiness-on-liveness-path",
        "setting-missing",
        "setting-misspelt",
        "secret-in-config-map",
        "schema",
        "does-not-render",
    ],
)
def test_a_broken_manifest_fails_the_check(
    tmp_path: Path, file: str, old: str, new: str, reported: str
) -> None:
    root = copy_of_repo(tmp_path, "deploy/k8s", "m2m/settings.json")
    replace_in(root / BASE / file, old, new)
    status, output = delivery_check(root, "kubernetes")
    assert status == 1
    assert "kubernetes: FAILED" in output
    assert reported in output
    if file != "api-pdb.yaml":  # the samples break a rule, not the schema
        assert "Additional properties" not in output


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_runs_from_one_image_with_a_cli_subcommand(overlay: str) -> None:
    workloads = {name: container(overlay, "Deployment", name) for name in PROCESSES}
    workloads["orders-migrate"] = container(overlay, "Job", "orders-migrate")
    assert len({each["image"] for each in workloads.values()}) == 1
    commands = {name: each["args"] for name, each in workloads.items()}
    expected = {**PROCESSES, "orders-migrate": "migrate"}
    assert commands == {name: [SERVICE, sub] for name, sub in expected.items()}
    defined = re.findall(r"^    ([a-z-]+) ", _parser().format_help(), flags=re.MULTILINE)
    assert set(expected.values()) <= set(defined)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_each_process_shutdown(overlay: str) -> None:
    api = find(overlay, "Deployment", "orders-api")["spec"]["template"]["spec"]
    sleep = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert api["terminationGracePeriodSeconds"] > sleep + GRACEFUL_SHUTDOWN_SECONDS
    settings = config(overlay)
    consumer = find(overlay, "Deployment", "orders-consumer")["spec"]["template"]["spec"]
    entry_in_hand = float(settings["ORDERS_CONSUMER__HANDLER_TIMEOUT_SECONDS"])
    entry_in_hand += int(settings["ORDERS_CONSUMER__BLOCK_MS"]) / 1000
    assert consumer["terminationGracePeriodSeconds"] > entry_in_hand
    publisher = find(overlay, "Deployment", "orders-publisher")["spec"]["template"]["spec"]
    publish = float(settings["ORDERS_OUTBOX__PUBLISH_TIMEOUT_SECONDS"])
    assert publisher["terminationGracePeriodSeconds"] > publish


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_the_ports_each_process_serves_metrics_on(overlay: str) -> None:
    settings = config(overlay)
    ports = {
        "orders-api": settings["ORDERS_SERVER__PORT"],
        "orders-publisher": settings["ORDERS_OUTBOX__METRICS_PORT"],
        "orders-consumer": settings["ORDERS_CONSUMER__METRICS_PORT"],
    }
    for name, port in ports.items():
        template = find(overlay, "Deployment", name)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == port, name
        assert annotations["prometheus.io/path"] == "/metrics"
        assert [p["containerPort"] for p in template["spec"]["containers"][0]["ports"]] == [
            int(port)
        ]
    assert settings["ORDERS_SERVER__HOST"] == "0.0.0.0"  # noqa: S104 - every port inside the pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_and_the_consumer_autoscale_and_every_process_has_a_budget(overlay: str) -> None:
    scaled = {
        m["spec"]["scaleTargetRef"]["name"]: m["spec"]
        for m in rendered(overlay)
        if m["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(scaled) == {"orders-api", "orders-consumer"}
    for name, spec in scaled.items():
        assert "replicas" not in find(overlay, "Deployment", name)["spec"], "the HPA owns it"
        assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    budgets = {
        m["metadata"]["name"] for m in rendered(overlay) if m["kind"] == "PodDisruptionBudget"
    }
    assert budgets == set(PROCESSES)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_ships_and_the_secret_is_referenced_by_name(overlay: str) -> None:
    assert not [m for m in rendered(overlay) if m["kind"] == "Secret"]
    for name in PROCESSES:
        references = {
            variable["name"]: variable["valueFrom"]["secretKeyRef"]
            for variable in container(overlay, "Deployment", name)["env"]
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        assert references == {
            "ORDERS_DATABASE__PASSWORD": {"name": "orders-secrets", "key": "database-password"},
            "ORDERS_REDIS__URL": {"name": "orders-secrets", "key": "redis-url"},
            # Needed only with the NATS broker: the key may be missing.
            "ORDERS_BROKER__NATS_URL": {
                "name": "orders-secrets",
                "key": "nats-url",
                "optional": True,
            },
        }


def test_production_runs_several_publishers_and_consumers() -> None:
    publisher = find("prod", "Deployment", "orders-publisher")["spec"]["replicas"]
    consumer = find("prod", "HorizontalPodAutoscaler", "orders-consumer")["spec"]["minReplicas"]
    assert publisher >= 2
    assert consumer >= 2
    namespace = find("prod", "Namespace", SERVICE)["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.slow
@CHECKOV
def test_checkov_finds_nothing_in_the_manifests_and_the_dockerfile() -> None:
    status, output = delivery_check(REPO, "checkov")
    assert status == 0, output
    assert "checkov: ok" in output


@pytest.mark.slow
@CHECKOV
def test_checkov_fails_a_pod_on_the_host_network(tmp_path: Path) -> None:
    root = copy_of_repo(tmp_path, "deploy/k8s", "Dockerfile")
    replace_in(
        root / BASE / "api-deployment.yaml",
        f"      serviceAccountName: {SERVICE}\n",
        f"      serviceAccountName: {SERVICE}\n      hostNetwork: true\n",
    )
    status, output = delivery_check(root, "checkov")
    assert status == 1
    assert "CKV_K8S_19" in output  # containers sharing the host network namespace


def test_the_docs_name_every_setting_taken_from_the_secret() -> None:
    workloads = [m for m in rendered("prod") if m["kind"] in {"Deployment", "Job"}]
    from_secret = {
        env["name"]
        for workload in workloads
        for each in workload["spec"]["template"]["spec"]["containers"]
        for env in each.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    guide = (REPO / "docs" / "kubernetes.md").read_text()
    settings_env = (REPO / BASE / "settings.env").read_text()
    assert from_secret
    assert {name for name in from_secret if f"`{name}`" not in guide} == set()
    assert {name for name in from_secret if name not in settings_env} == set()


def test_the_docs_name_every_port_a_network_policy_opens() -> None:
    policies = [m for m in rendered("prod") if m["kind"] == "NetworkPolicy"]
    ports = {
        port["port"]
        for policy in policies
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
        if isinstance(port["port"], int)
    }
    network = (REPO / "docs" / "kubernetes.md").read_text().split("**Network.**")[1]
    network = network.split("\n- **")[0]
    assert ports
    assert {port for port in ports if not re.search(rf"\b{port}\b", network)} == set()
