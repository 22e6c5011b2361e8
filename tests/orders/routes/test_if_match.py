"""Writes without If-Match are refused with 428 where the settings require it: no lost updates."""

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from core.settings import Environment
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.routes.test_orders import assert_problem, place
from tests.support import serve_in_process


@pytest.fixture
async def strict(database: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    http = database.http.model_copy(update={"require_if_match": True})
    async with serve_in_process(create_app(database.model_copy(update={"http": http}))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("PATCH", "", {"note": "lost?"}), ("POST", "/confirm", None), ("POST", "/cancel", None)],
)
async def test_a_change_without_if_match_is_refused_with_428_and_changes_nothing(
    strict: httpx.AsyncClient, method: str, suffix: str, body: object
) -> None:
    order = (await place(strict)).json()
    path = f"/v1/orders/{order['id']}"
    response = await strict.request(method, path + suffix, json=body)
    problem = assert_problem(response, 428, "precondition-required")
    assert "If-Match" in str(problem["detail"])
    assert (await strict.get(path)).json() == order

    changed = await strict.request(method, path + suffix, json=body, headers={"If-Match": '"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'


async def test_if_match_stays_optional_where_not_required(client: httpx.AsyncClient) -> None:
    order = (await place(client)).json()
    response = await client.patch(f"/v1/orders/{order['id']}", json={"note": "fine"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("environment", "required"),
    [
        (Environment.DEVELOPMENT, False),
        (Environment.TEST, False),
        (Environment.STAGING, True),
        (Environment.PRODUCTION, True),
    ],
)
def test_if_match_is_required_by_default_outside_development(
    environment: Environment, required: bool
) -> None:
    auth = {"jwks_url": "https://id.example.com/jwks", "hs256_secret": SecretStr("")}
    settings = OrdersSettings(environment=environment, auth=auth)  # type: ignore[arg-type]
    assert settings.if_match_required is required
