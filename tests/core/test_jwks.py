"""The identity provider's key set: a failed fetch is remembered and retried at most every
`jwks_refetch_seconds`, the last good keys keep serving, and made-up kids cannot flood it."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.core.identity import RSA_KEY, IdentityProvider, SigningKey, rsa_key, trusting
from tests.orders.clients.customers_service import serving
from tests.support import serve_in_process

CACHE_SECONDS = 0.5
REFETCH_SECONDS = 30.0  # the default: no test waits for it
FAILURES = {
    "404": {"status": 404},
    "500": {"status": 500},
    "not-json": {"body": b"<html>maintenance</html>"},
    "not-a-key-set": {"body": b"[]"},
    "no-usable-key": {"body": b'{"keys": [{"kty": "RSA"}]}'},
}


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with serving(IdentityProvider(keys=[RSA_KEY.jwk()])) as provider:
        yield provider


@asynccontextmanager
async def trusting_api(
    database: OrdersSettings, idp: IdentityProvider, cache_seconds: float
) -> AsyncIterator[httpx.AsyncClient]:
    auth = trusting(
        database.auth,
        idp,
        jwks_cache_seconds=cache_seconds,
        jwks_refetch_seconds=REFETCH_SECONDS,
    )
    # One attempt per fetch, so the provider's count is the fetches made; timeouts generous, so
    # on a loaded machine, with a hundred requests on the loop, each fetch still reaches it.
    timeouts = {f"{kind}_timeout_seconds": 30.0 for kind in ("connect", "read", "total")}
    http_client = database.http_client.model_copy(update={"retries": 0, **timeouts})
    rate_limit = database.rate_limit.model_copy(update={"auth_failures": 1000})
    # A hundred requests at once queue for ten pooled connections; on a loaded machine the last
    # may wait past the default 5 s. These tests are about keys, not the pool.
    pool = database.database.model_copy(update={"pool_timeout_seconds": 120.0})
    settings = database.model_copy(
        update={
            "auth": auth,
            "http_client": http_client,
            "rate_limit": rate_limit,
            "database": pool,
        }
    )
    async with serve_in_process(create_app(settings), authenticated=False) as client:
        yield client


@pytest.fixture
async def api(database: OrdersSettings, idp: IdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with trusting_api(database, idp, CACHE_SECONDS) as client:
        yield client


def fail(idp: IdentityProvider, how: dict[str, Any]) -> None:
    idp.status = how.get("status", 200)
    idp.body = how.get("body")


async def get_orders(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.get("/v1/orders", headers={"Authorization": f"Bearer {token}"})


async def many(api: httpx.AsyncClient, tokens: list[str]) -> list[int]:
    responses = await asyncio.gather(*(get_orders(api, token) for token in tokens))
    return [response.status_code for response in responses]


@pytest.mark.parametrize("how", FAILURES.values(), ids=FAILURES.keys())
async def test_a_failed_refresh_is_tried_once_and_the_last_good_keys_keep_serving(
    api: httpx.AsyncClient, idp: IdentityProvider, how: dict[str, Any]
) -> None:
    assert (await get_orders(api, RSA_KEY.sign())).status_code == 200
    fail(idp, how)
    await asyncio.sleep(CACHE_SECONDS * 1.5)  # the fetched keys are past their lifetime

    # New tokens each time (a token already verified would not even look at the keys).
    statuses = await many(api, [RSA_KEY.sign(sub=f"user-{n}") for n in range(100)])

    assert statuses == [200] * 100
    assert idp.fetches == 2  # the first fetch, then one failed refresh for all hundred


@pytest.mark.parametrize("how", FAILURES.values(), ids=FAILURES.keys())
async def test_without_any_good_keys_a_failed_fetch_is_a_503_and_is_not_retried_at_once(
    api: httpx.AsyncClient, idp: IdentityProvider, how: dict[str, Any]
) -> None:
    fail(idp, how)

    responses = [await get_orders(api, RSA_KEY.sign(sub=f"user-{n}")) for n in range(20)]

    assert {response.status_code for response in responses} == {503}
    for response in responses:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/token-keys-unavailable"
        assert 1 <= int(response.headers["retry-after"]) <= REFETCH_SECONDS
    assert idp.fetches == 1


async def test_made_up_kids_refetch_the_keys_at_most_once_per_interval(
    database: OrdersSettings, idp: IdentityProvider
) -> None:
    forger = rsa_key("unused")
    tokens = [SigningKey(uuid.uuid4().hex, "RS256", forger.private).sign() for _ in range(100)]
    async with trusting_api(database, idp, cache_seconds=300) as api:
        assert (await get_orders(api, RSA_KEY.sign())).status_code == 200

        statuses = await many(api, tokens)

    assert statuses == [401] * 100
    assert idp.fetches == 1  # the key set was fetched within the interval: no refetch at all


async def test_made_up_kids_while_the_provider_fails_fetch_once(
    api: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    assert (await get_orders(api, RSA_KEY.sign())).status_code == 200
    idp.status = 404
    await asyncio.sleep(CACHE_SECONDS * 1.5)
    forger = rsa_key("unused")
    tokens = [SigningKey(uuid.uuid4().hex, "RS256", forger.private).sign() for _ in range(100)]

    statuses = await many(api, tokens)

    assert statuses == [401] * 100
    assert idp.fetches == 2
