"""Hostile bearer tokens against the real app: every malformed, oversized or mismatched one is a
401 problem, never a 500; an address that keeps failing is limited; no body is read first."""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import get_default_algorithms

from orders.main import create_app
from orders.settings import OrdersSettings
from tests.core.identity import (
    EC_KEY,
    RSA_KEY,
    IdentityProvider,
    SigningKey,
    b64,
    claims,
    ec_key,
    trusting,
)
from tests.orders.clients.customers_service import serving
from tests.orders.payloads import order_payload
from tests.support import serve_in_process

BARE_EC_KEY = ec_key("ec-bare")  # published without `alg`: its curve alone says ES256
P384_KEY = ec_key("ec-384", "ES384")
SYMMETRIC_JWK = {"kty": "oct", "kid": "oct-1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    keys = [RSA_KEY.jwk(), EC_KEY.jwk(), BARE_EC_KEY.jwk(with_alg=False), SYMMETRIC_JWK]
    async with serving(IdentityProvider(keys=keys)) as provider:
        yield provider


def hostile_app(database: OrdersSettings, idp: IdentityProvider, **limits: Any) -> Any:
    auth = trusting(database.auth, idp, algorithms=["RS256", "ES256", "ES384"])
    rate_limit = database.rate_limit.model_copy(update=limits)
    return create_app(database.model_copy(update={"auth": auth, "rate_limit": rate_limit}))


@pytest.fixture
async def api(database: OrdersSettings, idp: IdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(hostile_app(database, idp), authenticated=False) as client:
        yield client


def forge(header: dict[str, Any], payload: Any = None, key: SigningKey | None = None) -> str:
    """A token put together by hand: PyJWT would refuse to write most of these."""
    body = payload if payload is not None else json.loads(json.dumps(claims(), default=_epoch))
    signing_input = f"{b64(header)}.{b64(body)}"
    key = key or RSA_KEY
    algorithm = get_default_algorithms()[key.algorithm]
    signature = algorithm.sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64_bytes(signature)}"


def b64_bytes(value: bytes) -> str:
    import base64  # noqa: PLC0415 - only the forger needs raw bytes

    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def _epoch(value: Any) -> int:
    return int(value.timestamp())


RSA = {"alg": "RS256", "kid": "rsa-1"}
HOSTILE: dict[str, Callable[[], str]] = {
    "alg-list": lambda: forge({**RSA, "alg": ["RS256"]}),
    "alg-object": lambda: forge({**RSA, "alg": {"RS256": True}}),
    "kid-list": lambda: forge({**RSA, "kid": ["rsa-1"]}),
    "kid-number": lambda: forge({**RSA, "kid": 1}),
    "typ-number": lambda: forge({**RSA, "typ": 7}),
    "crit-unknown": lambda: forge({**RSA, "crit": ["urn:x"], "urn:x": 1}),
    "crit-b64": lambda: forge({**RSA, "crit": ["b64"], "b64": True}),
    "jku": lambda: forge({**RSA, "jku": "https://evil.test/jwks.json"}),
    "x5u": lambda: forge({**RSA, "x5u": "https://evil.test/cert.pem"}),
    "jwk": lambda: forge({**RSA, "jwk": RSA_KEY.jwk()}),
    "x5c": lambda: forge({**RSA, "x5c": ["MIIB"]}),
    "rsa-kid-ec-alg": lambda: forge({"alg": "ES256", "kid": "rsa-1"}, key=EC_KEY),
    "symmetric-jwk": lambda: forge({"alg": "ES256", "kid": "oct-1"}, key=EC_KEY),
    "bare-ec-other-curve": lambda: forge({"alg": "ES384", "kid": "ec-bare"}, key=P384_KEY),
    "sub-list": lambda: RSA_KEY.sign(sub=["a"]),
    "exp-string": lambda: RSA_KEY.sign(exp="tomorrow"),
    "payload-list": lambda: forge(RSA, payload=["not", "claims"]),
    "header-list": lambda: f"{b64_bytes(b'[1]')}.{b64({})}.sig",
    "header-not-utf8": lambda: f"{b64_bytes(b'\xff\xfe')}.{b64({})}.sig",
    "bad-base64": lambda: "%%%.%%%.%%%",
    "two-segments": lambda: f"{b64({'alg': 'RS256'})}.{b64({})}",
    "huge-header": lambda: forge({**RSA, "pad": "a" * 100_000}),
    "huge-token": lambda: RSA_KEY.sign(pad="a" * 100_000),
}


@pytest.mark.parametrize("make", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_token_is_a_401_problem_and_logs_no_error(
    api: httpx.AsyncClient, make: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = await api.get("/v1/orders", headers={"Authorization": f"Bearer {make()}"})

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthenticated"
    assert response.headers["www-authenticate"].startswith('Bearer realm="api", error=')
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert [line for line in logged if line.get("level") in {"error", "critical"}] == []


async def test_a_scope_that_is_neither_text_nor_a_list_grants_nothing(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(
        "/v1/orders", headers={"Authorization": f"Bearer {RSA_KEY.sign(scope=5)}"}
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/insufficient-scope"


async def test_a_bare_ec_key_still_verifies_tokens_on_its_own_curve(
    api: httpx.AsyncClient,
) -> None:
    token = jwt.encode(claims(), BARE_EC_KEY.private, "ES256", headers={"kid": "ec-bare"})
    response = await api.get("/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


async def test_an_address_that_keeps_failing_gets_429_with_retry_after(
    database: OrdersSettings, idp: IdentityProvider
) -> None:
    async with serve_in_process(
        hostile_app(database, idp, auth_failures=3), authenticated=False
    ) as api:
        good = {"Authorization": f"Bearer {RSA_KEY.sign()}"}
        assert (await api.get("/v1/orders", headers=good)).status_code == 200
        bad = {"Authorization": f"Bearer {RSA_KEY.sign(aud='another-api')}"}
        statuses = [(await api.get("/v1/orders", headers=bad)).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert (await api.get("/v1/orders")).status_code == 429  # no token: a failure too

        limited = await api.get("/v1/orders", headers=bad)
        fresh = await api.get("/v1/orders", headers={"Authorization": f"Bearer {EC_KEY.sign()}"})
        known = await api.get("/v1/orders", headers=good)

    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"] == "/problems/rate-limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert fresh.status_code == 429  # not even verified while the address is limited
    assert known.status_code == 200  # a token this process already verified keeps working


async def test_a_bad_token_is_refused_before_the_body_is_read(api: httpx.AsyncClient) -> None:
    chunk = b" " * 65_536
    sent: list[int] = []

    async def megabyte() -> AsyncIterator[bytes]:
        yield b'{"note": "'
        for _ in range(15):  # 15 x 64 KiB of padding inside a JSON string: just under 1 MiB
            sent.append(len(chunk))
            yield chunk
        yield b'"}'

    headers = {"Authorization": "Bearer not.a.jwt", "Content-Type": "application/json"}
    response = await api.post("/v1/orders", content=megabyte(), headers=headers)

    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthenticated"
    assert sent == []  # the server never asked for the body


async def test_a_good_token_still_gets_its_body_read(api: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {RSA_KEY.sign()}"}
    response = await api.post("/v1/orders", json=order_payload(), headers=headers)
    assert response.status_code == 201
