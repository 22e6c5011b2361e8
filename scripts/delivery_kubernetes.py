"""The rules for the Kubernetes manifests that schemas do not check: probes, an unprivileged
pod, resources, and settings that come from the ConfigMap or the Secret and nowhere else."""

import re
from collections.abc import Iterator
from typing import Any

# Stamped into the image by the Dockerfile's ENV at build time: a ConfigMap value would hide the
# build that /health reports.
IMAGE_STAMPED = frozenset({"ORDERS_SERVICE_VERSION", "ORDERS_BUILD__COMMIT", "ORDERS_BUILD__TIME"})
# Secrets the service refuses outside development and test: never in a manifest.
DEVELOPMENT_ONLY = frozenset({"ORDERS_AUTH__HS256_SECRET"})
# Variables the service reads besides its own settings (docs/observability.md).
OTHER_VARIABLES = re.compile(r"OTEL_[A-Z_]+")
WORKLOADS = ("Deployment", "Job")
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
# What the API's probes ask (core/health.py): liveness never depends on PostgreSQL or Redis.
API_PROBE_PATHS = {
    "startupProbe": "/health",
    "livenessProbe": "/health",
    "readinessProbe": "/health/ready",
}
# Where the image's processes write temporary files (PROMETHEUS_MULTIPROC_DIR too).
SCRATCH = "/tmp"  # noqa: S108 - a path inside the container, not on this machine
SETTING_LINE = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def manifest_problems(objects: list[dict[str, Any]], secrets: set[str]) -> list[str]:
    """Every workload of one rendered overlay, held to the rules; `secrets` are the settings
    that must come from the Secret."""
    problems = []
    for manifest in objects:
        kind, name = manifest.get("kind"), manifest.get("metadata", {}).get("name")
        if kind in WORKLOADS:
            where = f"{kind} {name}"
            pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
            problems += [f"{where}: {problem}" for problem in _pod_problems(pod)]
            for container in pod.get("containers", []):
                found = _container_problems(container, kind, pod, secrets)
                problems += [f"{where}, container {container.get('name')}: {p}" for p in found]
        elif kind == "ConfigMap":
            problems += [f"ConfigMap {name}: {p}" for p in _config_map_problems(manifest, secrets)]
    return problems


def settings_env_problems(text: str, settings: list[str], secrets: set[str]) -> list[str]:
    """base/settings.env names every setting once (commented out when unset), except the
    secret and the image-stamped ones, and nothing that is not a setting."""
    named = SETTING_LINE.findall(text)
    problems = [f"{name} is named more than once" for name in sorted(_repeated(named))]
    expected = set(settings) - secrets - IMAGE_STAMPED - DEVELOPMENT_ONLY
    problems += [
        f"{name} is missing: a setting the pods cannot be given"
        for name in settings
        if name in expected and name not in named
    ]
    problems += [
        f"{name} is not a setting of the service (m2m/settings.json)"
        for name in sorted(set(named) - set(settings))
        if not OTHER_VARIABLES.fullmatch(name)
    ]
    problems += [
        f"{name} belongs in the Secret orders-secrets, never in the ConfigMap"
        for name in sorted(set(named) & secrets)
    ]
    problems += [
        f"{name} is for development and test only; the service refuses it here"
        for name in sorted(set(named) & DEVELOPMENT_ONLY)
    ]
    problems += [
        f"{name} is stamped into the image; a value here would hide the build /health reports"
        for name in sorted(set(named) & IMAGE_STAMPED)
    ]
    return problems


def _pod_problems(pod: dict[str, Any]) -> Iterator[str]:
    context = pod.get("securityContext", {})
    if context.get("runAsNonRoot") is not True:
        yield "runs as root: the pod's securityContext lacks runAsNonRoot: true"
    if context.get("runAsUser") == 0:
        yield "runs as root: the pod's securityContext sets runAsUser: 0"
    if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        yield "no seccompProfile RuntimeDefault in the pod's securityContext"
    if pod.get("automountServiceAccountToken") is not False:
        yield "mounts a service account token (automountServiceAccountToken is not false)"


def _container_problems(
    container: dict[str, Any], kind: str, pod: dict[str, Any], secrets: set[str]
) -> Iterator[str]:
    context = container.get("securityContext", {})
    if context.get("runAsUser") == 0:
        yield "runs as root: its securityContext sets runAsUser: 0"
    if context.get("runAsNonRoot") is False:
        yield "may run as root: its securityContext sets runAsNonRoot: false"
    if context.get("privileged") is True:
        yield "is privileged"
    if context.get("allowPrivilegeEscalation") is not False:
        yield "allows privilege escalation (allowPrivilegeEscalation is not false)"
    if context.get("readOnlyRootFilesystem") is not True:
        yield "has a writable root filesystem (readOnlyRootFilesystem is not true)"
    if "ALL" not in context.get("capabilities", {}).get("drop", []):
        yield "keeps Linux capabilities (capabilities.drop lacks ALL)"
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(bound, {}))
        if missing:
            yield f"no {bound} for {' and '.join(sorted(missing))}"
    if kind == "Deployment":
        yield from _probe_problems(container)
        yield from _secret_problems(container, secrets)
    yield from _mount_problems(container, pod)


def _probe_problems(container: dict[str, Any]) -> Iterator[str]:
    serves = container.get("args", container.get("command", []))[-1:] == ["serve"]
    for probe in PROBES:
        if probe not in container:
            yield f"no {probe}: a long-running process must be probed"
        elif serves and container[probe].get("httpGet", {}).get("path") != API_PROBE_PATHS[probe]:
            yield f"the {probe} of `orders serve` must ask {API_PROBE_PATHS[probe]}"


def _secret_problems(container: dict[str, Any], secrets: set[str]) -> Iterator[str]:
    from_secret = {
        variable["name"]
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    for name in sorted(secrets - from_secret):
        yield f"{name} does not come from the Secret (env valueFrom.secretKeyRef)"


def _mount_problems(container: dict[str, Any], pod: dict[str, Any]) -> Iterator[str]:
    """A read-only root needs somewhere to write: /tmp is an emptyDir."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if "emptyDir" not in volumes.get(mounts.get(SCRATCH, ""), {}):
        yield f"no emptyDir at {SCRATCH}: a read-only root filesystem leaves nowhere to write"


def _config_map_problems(manifest: dict[str, Any], secrets: set[str]) -> Iterator[str]:
    for key in sorted(set(manifest.get("data", {})) & (secrets | IMAGE_STAMPED)):
        yield f"holds {key}, which must not come from a ConfigMap"


def _repeated(names: list[str]) -> set[str]:
    return {name for name in names if names.count(name) > 1}
