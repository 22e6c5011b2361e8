"""Rate limits through the API on real Redis: per caller and route group, failing open."""

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import bearer, free_port, serve_in_process


def limited(settings: OrdersSettings, **limits: object) -> OrdersSettings:
    rate_limit = settings.rate_limit.model_copy(update={"reads": 5, "writes": 3, **limits})
    return settings.model_copy(update={"rate_limit": rate_limit})


@pytest.fixture
async def api(database: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(create_app(limited(database))) as client:
        yield client


async def test_over_the_limit_is_429_with_retry_after(api: httpx.AsyncClient) -> None:
    answers = [await api.post("/v1/orders", json=order_payload()) for _ in range(4)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert [a.headers["ratelimit"] for a in answers[:3]] == [
        f'"writes";r={left};t={answers[i].headers["ratelimit"].rsplit("=", 1)[1]}'
        for i, left in enumerate((2, 1, 0))
    ]
    assert answers[0].headers["ratelimit-policy"] == '"writes";q=3;w=60'
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/rate-limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_other_callers_and_other_groups_are_unaffected(
    api: httpx.AsyncClient, settings: OrdersSettings
) -> None:
    for _ in range(4):
        await api.post("/v1/orders", json=order_payload())
    assert (await api.post("/v1/orders", json=order_payload())).status_code == 429

    assert (await api.get("/v1/orders")).status_code == 200  # reads have their own budget
    other = bearer(settings, subject="another-client")
    response = await api.post("/v1/orders", json=order_payload(), headers=other)
    assert response.status_code == 201


async def test_when_redis_is_down_requests_pass_and_it_is_counted(
    database: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = database.redis.model_copy(
        update={"url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")}
    )
    settings = limited(database).model_copy(update={"redis": dead})
    async with serve_in_process(create_app(settings)) as api:
        answers = [await api.post("/v1/orders", json=order_payload()) for _ in range(5)]
        metrics = (await api.get("/metrics")).text

    assert [a.status_code for a in answers] == [201] * 5
    assert "ratelimit" not in answers[0].headers
    assert 'rate_limit_decisions_total{group="writes",outcome="fail_open"} 5.0' in metrics
    assert capsys.readouterr().out.count('"rate_limit.fail_open"') == 1  # not once a request


async def test_failing_closed_is_a_503(database: OrdersSettings) -> None:
    dead = database.redis.model_copy(
        update={"url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")}
    )
    settings = limited(database, fail_open=False).model_copy(update={"redis": dead})
    async with serve_in_process(create_app(settings)) as api:
        response = await api.post("/v1/orders", json=order_payload())
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
