"""The image and the compose stack, built and run for real: the README's Docker section as a
user goes through it. The tests run in this order against one stack; the last takes it down."""

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml
from nats.js.errors import NotFoundError
from redis import Redis

from core.events import CloudEvent
from core.jetstream import stream_for, to_fields, to_message
from tests.delivery.containers import (
    APP_SERVICES,
    BASE,
    PROFILES,
    Engine,
    Stack,
    engine_host,
    labelled,
    stack_of,
    wait_for,
)
from tests.delivery.support import REPO

# Builds images and runs containers (minutes): CI runs it, `make test-fast` leaves it out.
pytestmark = pytest.mark.slow

SERVICE = yaml.safe_load((REPO / "compose.yml").read_text())["name"]
TOPIC = SERVICE  # the stream the service's events go to
ORDER = {
    "customer_id": "0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f",
    "currency": "EUR",
    "lines": [{"sku": "SKU-1001", "quantity": 2, "unit_price": "19.99"}],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from stack_of(REPO, tmp_path_factory.mktemp("stack"), f"{SERVICE}-delivery")


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    engine = Engine(stack.docker_host)
    yield engine
    engine.http.close()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.token()}"}
    with httpx.Client(base_url=stack.url(""), headers=headers, timeout=30) as client:
        yield client


def place(api: httpx.Client, **headers: str) -> httpx.Response:
    return api.post("/v1/orders", json=ORDER, headers=headers)


def events_on_redis(stack: Stack, stream: str = TOPIC) -> list[CloudEvent]:
    with Redis(port=stack.ports["redis"], decode_responses=True) as redis:
        entries = redis.xrange(stream)
    return [CloudEvent.from_fields(fields) for _, fields in entries]


def event_of(events: list[CloudEvent], kind: str, order_id: str) -> CloudEvent | None:
    return next((e for e in events if e.type.endswith(kind) and order_id in str(e.data)), None)


def test_migrate_exits_0_before_the_processes_start(stack: Stack, engine: Engine) -> None:
    migrate = engine.container(f"{stack.project}-migrate-1")["State"]
    assert migrate["ExitCode"] == 0
    for name in ("api", "publisher", "consumer"):
        started = engine.container(f"{stack.project}-{name}-1")["State"]["StartedAt"]
        assert migrate["FinishedAt"] < started, name


def test_every_health_check_reports_healthy(stack: Stack) -> None:
    services = stack.services()
    assert set(services) == set(BASE)
    for name in set(BASE) - {"migrate"}:
        assert (services[name]["State"], services[name]["Health"]) == ("running", "healthy"), name


def test_the_readme_walkthrough_through_the_published_port(stack: Stack, api: httpx.Client) -> None:
    unauthenticated = httpx.get(stack.url("/v1/orders"), timeout=30)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"

    key = str(uuid.uuid4())
    placed = place(api, **{"Idempotency-Key": key})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    assert placed.headers["Location"].endswith(f"/v1/orders/{order_id}")
    assert placed.headers["ETag"] == '"1"'
    replayed = place(api, **{"Idempotency-Key": key})
    assert (replayed.status_code, replayed.json()) == (201, placed.json())
    assert replayed.headers["Idempotent-Replayed"] == "true"

    path = f"/v1/orders/{order_id}"
    changed = api.patch(path, json={"note": "leave at the door"}, headers={"If-Match": '"1"'})
    assert (changed.status_code, changed.headers["ETag"]) == (200, '"2"')
    stale = api.patch(path, json={"note": "too late"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert api.post(f"{path}/cancel").status_code == 200
    assert api.post(f"{path}/cancel").status_code == 409

    placed_event = wait_for(
        lambda: event_of(events_on_redis(stack), "placed.v1", order_id), "the placed event"
    )
    assert placed_event.source == f"/services/{SERVICE}"


def payment(order_id: str) -> CloudEvent:
    paid = {"payment_id": str(uuid.uuid4()), "order_id": order_id, "amount": "39.98"}
    data = json.dumps({**paid, "currency": "EUR"})
    return CloudEvent.from_fields(
        {
            "specversion": "1.0",
            "id": f"payment-{order_id}",
            "source": "/services/payments",
            "type": "payments.payment.succeeded.v1",
            "subject": "payment/1",
            "time": "2026-11-21T10:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
    )


def status_of(api: httpx.Client, order_id: str) -> str:
    return str(api.get(f"/v1/orders/{order_id}").json()["status"])


def test_a_payment_event_confirms_the_order_through_the_consumer(
    stack: Stack, api: httpx.Client
) -> None:
    order_id = place(api).json()["id"]
    with Redis(port=stack.ports["redis"], decode_responses=True) as redis:
        redis.xadd("payments", payment(order_id).to_fields())
    wait_for(lambda: status_of(api, order_id) == "confirmed", "the order confirmed")
    wait_for(lambda: event_of(events_on_redis(stack), "confirmed.v1", order_id), "confirmed event")


def test_the_image_runs_as_uid_10001_on_a_read_only_root(stack: Stack, engine: Engine) -> None:
    for name in APP_SERVICES[1:]:
        container = engine.container(f"{stack.project}-{name}-1")
        assert container["Config"]["User"] == "10001:10001", name
        assert container["HostConfig"]["ReadonlyRootfs"] is True, name
    probe = "import os;print(os.getuid());open('/app/written','w')"
    result = subprocess.run(
        [*stack.argv(), "exec", "-T", "api", "python", "-c", probe],
        cwd=stack.root,
        env=stack.environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "10001"
    assert "Read-only file system" in result.stderr


def test_health_answers_from_the_images_own_healthcheck(stack: Stack, engine: Engine) -> None:
    """The image alone, no health check given: the Dockerfile's HEALTHCHECK reports healthy."""
    image = engine.container(f"{stack.project}-api-1")["Config"]["Image"]
    stack.timings["image size MB"] = round(engine.image(image)["Size"] / 1e6)
    name = f"{stack.project}-image-healthcheck"
    body = {"Image": image, "HostConfig": {"ReadonlyRootfs": True}}
    created = engine.http.post("/containers/create", params={"name": name}, json=body)
    assert created.status_code == 201, created.text
    try:
        engine.http.post(f"/containers/{name}/start").raise_for_status()
        assert "/health" in " ".join(engine.container(name)["Config"]["Healthcheck"]["Test"])

        def health() -> str | None:
            status = engine.container(name)["State"]["Health"]["Status"]
            return status if status != "starting" else None

        assert wait_for(health, "the image's health check") == "healthy"
    finally:
        engine.http.delete(f"/containers/{name}", params={"force": "true"})


def prometheus(stack: Stack, path: str) -> Any:
    url = f"http://127.0.0.1:{stack.ports['prometheus']}/api/v1/{path}"
    return httpx.get(url, timeout=30).json()["data"]


def test_prometheus_scrapes_every_process_and_loads_the_alert_rules(stack: Stack) -> None:
    # Grafana is left out: no registry gives its image, no Debian package a stand-in.
    observability = ("--profile", "observability", "up", "--wait", *BASE, "prometheus")
    stack.compose(*observability, phase="up with observability")

    def every_target_up() -> dict[str, str] | None:
        targets = prometheus(stack, "targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if len(health) == 3 and set(health.values()) == {"up"} else None

    jobs = wait_for(every_target_up, "Prometheus to scrape every process", seconds=180)
    assert set(jobs) == {f"{SERVICE}-api", f"{SERVICE}-publisher", f"{SERVICE}-consumer"}
    rules = yaml.safe_load((REPO / "observability" / "alerts.yml").read_text())
    defined = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    loaded = {
        rule["name"] for group in prometheus(stack, "rules")["groups"] for rule in group["rules"]
    }
    assert loaded == defined


async def events_on_jetstream(port: int, topic: str = TOPIC) -> list[CloudEvent]:
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = client.jetstream()
        last = (await js.stream_info(stream_for(topic))).state.last_seq
        messages = [await js.get_msg(stream_for(topic), seq) for seq in range(1, last + 1)]
        return [CloudEvent.from_fields(to_fields(m.headers, m.data or b"")) for m in messages]
    finally:
        await client.close()


async def publish_on_jetstream(port: int, event: CloudEvent, topic: str) -> None:
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        headers, payload = to_message(event)
        await client.jetstream().publish(topic, payload, headers=headers)
    finally:
        await client.close()


def test_with_the_nats_profile_the_events_go_to_jetstream(stack: Stack, api: httpx.Client) -> None:
    nats_profile = ("--profile", "nats", "up", "--wait")
    stack.compose(*nats_profile, phase="up on nats", ORDERS_BROKER__KIND="nats")
    order_id = place(api).json()["id"]
    port = stack.ports["nats"]

    def on_jetstream(kind: str) -> CloudEvent | None:
        try:
            return event_of(asyncio.run(events_on_jetstream(port)), kind, order_id)
        except NotFoundError:
            return None  # the publisher creates the stream with its first event

    wait_for(lambda: on_jetstream("placed.v1"), "the placed event on JetStream")
    wait_for(lambda: asyncio.run(stream_exists(port, "payments")), "the consumer's stream")
    asyncio.run(publish_on_jetstream(port, payment(order_id), "payments"))
    wait_for(lambda: status_of(api, order_id) == "confirmed", "the order confirmed")
    wait_for(lambda: on_jetstream("confirmed.v1"), "the confirmed event on JetStream")


async def stream_exists(port: int, topic: str) -> bool:
    client = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        await client.jetstream().stream_info(stream_for(topic))
    except NotFoundError:
        return False
    else:
        return True
    finally:
        await client.close()


def test_restarting_the_publisher_loses_no_event_placed_meanwhile(
    stack: Stack, api: httpx.Client
) -> None:
    restart = subprocess.Popen(
        [*stack.argv(), "restart", "publisher"],
        cwd=stack.root,
        env=stack.environment(ORDERS_BROKER__KIND="nats"),
    )
    placed = [place(api).json()["id"] for _ in range(10)]
    assert restart.wait(timeout=120) == 0
    placed += [place(api).json()["id"] for _ in range(5)]
    port = stack.ports["nats"]

    def all_published() -> bool:
        events = asyncio.run(events_on_jetstream(port))
        return all(event_of(events, "placed.v1", order_id) for order_id in placed)

    wait_for(all_published, "every event placed during the restart")


def test_down_stops_every_container_by_sigterm(stack: Stack, engine: Engine) -> None:
    running = {
        name.lstrip("/")
        for container in engine.items("/containers/json", filters=labelled(stack.project))
        for name in container["Names"]
    }
    assert len(running) >= len(BASE) - 1, running  # migrate has exited
    started = time.time()
    stack.compose(*PROFILES, "down", phase="down", ORDERS_BROKER__KIND="nats")

    def exits() -> dict[str, str] | None:
        died = [e for e in engine.events(stack.project, started) if e["Action"] == "die"]
        codes = {
            e["Actor"]["Attributes"]["name"]: e["Actor"]["Attributes"]["exitCode"] for e in died
        }
        return codes if running <= codes.keys() else None

    codes = wait_for(exits, "every exit")
    killed = {name: code for name, code in codes.items() if code == "137"}
    assert not killed, codes


def test_the_engine_outlives_the_tree_that_started_it(stack: Stack, tmp_path: Path) -> None:
    """The machine's container engine, started from a checkout since removed (a generated
    service's, in the generator tests), still starts a container on a named volume."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "scripts", tree / "scripts")
    subprocess.run(["pkill", "-f", "podman system service"], check=False)  # started by the tree
    engine = Engine(engine_host(tree))
    shutil.rmtree(tree)
    [image] = [
        tag for i in engine.items("/images/json") for tag in i["RepoTags"] or [] if "redis" in tag
    ]
    volume = f"outlives-{uuid.uuid4().hex[:8]}"
    config = {"Image": image, "Cmd": ["true"], "HostConfig": {"Binds": [f"{volume}:/data"]}}
    created = engine.post("/containers/create", config)
    try:
        engine.post(f"/containers/{created['Id']}/start")
        assert engine.post(f"/containers/{created['Id']}/wait")["StatusCode"] == 0
    finally:
        engine.http.delete(f"/containers/{created['Id']}", params={"force": True})
        engine.http.delete(f"/volumes/{volume}")
        engine.http.close()
