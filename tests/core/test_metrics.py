"""Prometheus metrics: bounded labels, valid exposition, shipped config, several workers."""

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.metrics import ConsumerMetrics, HttpMetrics, OutboxMetrics
from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import free_port, start_command, wait_until_ready

OBSERVABILITY = Path("observability")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], input=stdin, capture_output=True, text=True, check=False
    )


async def test_requests_are_labelled_by_route_template_never_by_id(
    client: httpx.AsyncClient,
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await client.get(f"/v1/orders/{order_id}")
    await client.get("/v1/nowhere/at/all")
    exposition = (await client.get("/metrics")).text
    assert (
        'http_requests_total{method="GET",route="/v1/orders/{order_id}",status_class="2xx"} 1.0'
        in exposition
    )
    assert (
        'http_requests_total{method="POST",route="/v1/orders",status_class="2xx"} 1.0' in exposition
    )
    assert 'route="unmatched",status_class="4xx"' in exposition
    assert order_id not in exposition
    assert "nowhere" not in exposition
    assert "db_pool_size 5.0" in exposition


async def test_the_api_exposition_passes_promtool(client: httpx.AsyncClient) -> None:
    await client.post("/v1/orders", json=order_payload())
    await client.get("/health/ready")
    response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    result = promtool("check", "metrics", stdin=response.text)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_workers_expositions_pass_promtool() -> None:
    registry = CollectorRegistry()
    outbox, consumer = OutboxMetrics(registry), ConsumerMetrics(registry)
    outbox.published.inc(3)
    outbox.commit_to_publish.observe(0.02)
    consumer.messages.labels("payments", "ok").inc()
    consumer.end_to_end_seconds.labels("payments").observe(0.5)
    result = promtool("check", "metrics", stdin=generate_latest(registry).decode())
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_shipped_prometheus_config_and_alert_rules_are_valid() -> None:
    config = promtool("check", "config", str(OBSERVABILITY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", str(OBSERVABILITY / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 7 rules found" in rules.stdout


def test_the_alert_rules_fire_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", str(OBSERVABILITY / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_and_dashboard_use_only_metrics_that_exist() -> None:
    registry = CollectorRegistry()
    OutboxMetrics(registry)
    ConsumerMetrics(registry)
    http = HttpMetrics()
    assert http.registry is not None
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = {
        family.name + suffix
        for metrics in (registry, http.registry)
        for family in metrics.collect()
        for suffix in suffixes[family.type]
    }
    used = set()
    for path in (OBSERVABILITY / "alerts.yml", *OBSERVABILITY.rglob("*.json")):
        used |= set(
            re.findall(r"\b((?:http|outbox|consumer|db_pool|dependency)_[a-z_]+)", path.read_text())
        )
    assert used, "no metric found in the shipped files"
    assert used <= names, used - names


@pytest.mark.slow  # a real process, seconds: CI runs it, test-fast does not
def test_with_two_workers_the_counter_counts_every_request(
    database: OrdersSettings, tmp_path: Path
) -> None:
    port = free_port()
    process = start_command(
        database,
        "serve",
        ORDERS_SERVER__PORT=str(port),
        ORDERS_SERVER__WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    base_url = f"http://127.0.0.1:{port}"
    sent = 0
    try:
        wait_until_ready(base_url, process)
        # New connections until both workers have counted some (bounded), then some more.
        while sent < 40 or (len(counting_pids(tmp_path)) < 2 and sent < 400):
            assert httpx.get(f"{base_url}/health").status_code == 200
            sent += 1
        exposition = httpx.get(f"{base_url}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert len(counting_pids(tmp_path)) == 2, "both workers counted requests"
    counted = re.search(
        r'http_requests_total\{method="GET",route="/health",status_class="2xx"\} (\S+)', exposition
    )
    assert counted is not None, exposition
    assert float(counted.group(1)) == sent


def counting_pids(directory: Path) -> set[str]:
    return {path.name.rsplit("_", 1)[-1] for path in directory.glob("counter_*.db")}


async def test_odd_methods_and_path_shapes_do_not_make_new_series(
    client: httpx.AsyncClient,
) -> None:
    order_id = (await client.post("/v1/orders", json=order_payload())).json()["id"]
    await client.request("FOO1", "/v1/orders")
    await client.post(f"/v1/orders/{order_id}/confirm")
    exposition = (await client.get("/metrics")).text
    assert 'method="OTHER"' in exposition
    assert "FOO1" not in exposition
    assert 'route="/v1/orders/{order_id}/confirm"' in exposition
