"""A service generated from the template builds its image and runs its compose stack: the
walkthrough's core (201, then the event on the stream) through the container path."""

from collections.abc import Iterator

import httpx
import pytest
from redis import Redis

from tests.delivery.containers import Stack, stack_of, wait_for
from tests.generator.support import generate

# Generates a service, builds its image and runs its containers (minutes).
pytestmark = pytest.mark.slow

ORDER = {
    "customer_id": "0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f",
    "currency": "EUR",
    "lines": [{"sku": "SKU-1001", "quantity": 1, "unit_price": "5.00"}],
}


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    service = generate(tmp_path_factory.mktemp("generated"))
    yield from stack_of(service, tmp_path_factory.mktemp("stack"), "billing-delivery")


def streamed_types(port: int, order_id: str) -> set[str]:
    """The event types of every stream entry that names the order."""
    with Redis(port=port, decode_responses=True) as redis:
        entries = [
            entry for stream in redis.scan_iter(_type="STREAM") for entry in redis.xrange(stream)
        ]
    return {fields["type"] for _, fields in entries if order_id in fields.get("data", "")}


def test_the_generated_service_places_an_order_and_publishes_it(billing: Stack) -> None:
    headers = {"Authorization": f"Bearer {billing.token()}"}
    placed = httpx.post(billing.url("/v1/orders"), json=ORDER, headers=headers, timeout=30)
    assert placed.status_code == 201, placed.text
    assert placed.headers["Location"].endswith(placed.json()["id"])
    order_id = placed.json()["id"]
    port = billing.ports["redis"]
    types = wait_for(lambda: streamed_types(port, order_id), "the placed event")
    assert types == {"billing.order.placed.v1"}
