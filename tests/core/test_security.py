"""Bearer tokens against the real app: RS256/ES256 keys from a JWKS served over HTTP, and HS256.

Keys are generated in tests/core/identity.py; the identity provider is a local HTTP server whose
key set can change.
"""

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from core.settings import AuthSettings, Environment
from core.tokens import (
    NotAuthenticatedError,
    SharedSecret,
    TokenVerifier,
    development_secret,
    mint_token,
)
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.core.identity import (
    EC_KEY,
    ISSUER,
    RSA_KEY,
    IdentityProvider,
    SigningKey,
    b64,
    claims,
    rsa_key,
    trusting,
)
from tests.orders.clients.customers_service import serving
from tests.support import bearer, free_port, serve_in_process


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with serving(IdentityProvider(keys=[RSA_KEY.jwk(), EC_KEY.jwk()])) as provider:
        yield provider


@pytest.fixture
async def api(database: OrdersSettings, idp: IdentityProvider) -> AsyncIterator[httpx.AsyncClient]:
    auth = trusting(database.auth, idp, jwks_refetch_seconds=0)
    app = create_app(database.model_copy(update={"auth": auth}))
    async with serve_in_process(app, authenticated=False) as client:
        yield client


async def get_orders(api: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await api.get("/v1/orders", headers=headers)


def assert_unauthenticated(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthenticated"
    assert description in response.json()["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token"')


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
async def test_a_valid_token_from_the_jwks_is_accepted(
    api: httpx.AsyncClient, key: SigningKey
) -> None:
    response = await get_orders(api, key.sign())
    assert response.status_code == 200
    assert response.json()["total"] == 0


async def test_no_token_is_401_with_a_bare_bearer_challenge(api: httpx.AsyncClient) -> None:
    response = await get_orders(api, None)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    basic = await api.get("/v1/orders", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


@pytest.mark.parametrize(
    ("token", "description"),
    [
        (lambda: RSA_KEY.sign(exp=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)), "expired"),
        (lambda: RSA_KEY.sign(nbf=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)), "not valid"),
        (lambda: RSA_KEY.sign(aud="another-api"), "audience"),
        (lambda: RSA_KEY.sign(iss="https://evil.test/"), "issuer"),
        (lambda: RSA_KEY.sign(sub=None), "sub"),
        (lambda: RSA_KEY.sign(exp=None), "exp"),
        (lambda: SigningKey("rsa-1", "RS256", rsa_key("x").private).sign(), "signature"),
        (lambda: jwt.encode(claims(), "", algorithm="none"), "'none'"),
        (lambda: rsa_key("rsa-unknown").sign(), "unknown"),
        (lambda: "not.a.jwt", "well-formed"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "no-subject",
        "no-expiry",
        "bad-signature",
        "alg-none",
        "unknown-kid",
        "garbage",
    ],
)
async def test_invalid_tokens_are_401(api: httpx.AsyncClient, token: Any, description: str) -> None:
    assert_unauthenticated(await get_orders(api, token()), description)


async def test_hs256_signed_with_the_public_key_is_refused(api: httpx.AsyncClient) -> None:
    # The classic confusion: the RSA public key used as an HMAC secret.
    pem = RSA_KEY.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # PyJWT refuses to sign like that, so the token is put together by hand.
    header = b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = b64(json.loads(json.dumps(claims(), default=lambda t: int(t.timestamp()))))
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert_unauthenticated(await get_orders(api, forged), "'HS256'")


async def test_a_key_signed_for_another_family_is_refused(api: httpx.AsyncClient) -> None:
    # The header claims ES256 while the kid names an RSA key.
    header = {"kid": "rsa-1", "alg": "ES256"}
    forged = jwt.encode(claims(), EC_KEY.private, algorithm="ES256", headers=header)
    assert_unauthenticated(await get_orders(api, forged), "not for ES256")


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    api: httpx.AsyncClient, idp: IdentityProvider
) -> None:
    assert (await get_orders(api, RSA_KEY.sign())).status_code == 200
    fetches = idp.fetches
    assert (await get_orders(api, RSA_KEY.sign())).status_code == 200
    assert idp.fetches == fetches  # cached

    rotated = rsa_key("rsa-2")
    idp.keys.append(rotated.jwk())
    assert (await get_orders(api, rotated.sign())).status_code == 200
    assert idp.fetches == fetches + 1


async def test_a_missing_scope_is_403_not_401(api: httpx.AsyncClient) -> None:
    reader = RSA_KEY.sign(scope="orders:read")
    assert (await get_orders(api, reader)).status_code == 200

    response = await api.post("/v1/orders", json={}, headers={"Authorization": f"Bearer {reader}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert "orders:write" in response.json()["detail"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_scopes_may_come_as_a_list(api: httpx.AsyncClient) -> None:
    token = RSA_KEY.sign(scope=None, scp=["orders:read"])
    assert (await get_orders(api, token)).status_code == 200


async def test_health_and_metrics_need_no_token(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/ready", "/metrics"):
        assert (await api.get(path)).status_code == 200, path


async def test_every_v1_route_refuses_a_request_without_a_token(
    api: httpx.AsyncClient, settings: OrdersSettings
) -> None:
    document = create_app(settings).openapi()
    some_id = "0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f"
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            (requirement,) = operation["security"]
            resource = path.split("/")[2].replace("-", "_")  # /v1/line-items: line_items:read
            assert requirement["HTTPBearer"] in ([f"{resource}:read"], [f"{resource}:write"])
            url = re.sub(r"\{\w+_id\}", some_id, path)
            response = await api.request(method.upper(), url, json={})
            assert response.status_code == 401, (method, path)


async def test_the_subject_is_on_the_access_log_line(
    api: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await get_orders(api, RSA_KEY.sign(sub="alice"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert access[-1]["subject"] == "alice"


async def test_an_unreachable_identity_provider_is_503_not_401(database: OrdersSettings) -> None:
    auth = database.auth.model_copy(
        update={"jwks_url": f"http://127.0.0.1:{free_port()}/jwks.json", "issuer": ISSUER}
    )
    app = create_app(database.model_copy(update={"auth": auth}))
    async with serve_in_process(app, authenticated=False) as api:
        response = await get_orders(api, RSA_KEY.sign(aud=database.auth.audience))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["type"] == "/problems/token-keys-unavailable"


async def test_development_tokens_use_hs256(
    client: httpx.AsyncClient, settings: OrdersSettings
) -> None:
    good = mint_token(settings.auth, "dev", ["orders:read"])
    assert (
        await client.get("/v1/orders", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200
    other = settings.auth.model_copy(
        update={"hs256_secret": SecretStr("another-secret-of-at-least-32-bytes")}
    )  # pragma: allowlist secret
    forged = mint_token(other, "dev", ["orders:read"])
    response = await client.get("/v1/orders", headers={"Authorization": f"Bearer {forged}"})
    assert_unauthenticated(response, "signature")
    rs256 = RSA_KEY.sign(iss=settings.auth.issuer, aud=settings.auth.audience)
    response = await client.get("/v1/orders", headers={"Authorization": f"Bearer {rs256}"})
    assert_unauthenticated(response, "'RS256'")
    assert (await client.get("/v1/orders", headers=bearer(settings))).status_code == 200


@pytest.mark.parametrize("environment", [Environment.STAGING, Environment.PRODUCTION])
def test_outside_development_a_jwks_is_required_and_hs256_refused(
    environment: Environment,
) -> None:
    with pytest.raises(ValueError, match="JWKS_URL"):
        OrdersSettings(environment=environment)
    with pytest.raises(ValueError, match="development and test only"):
        OrdersSettings(
            environment=environment,
            auth=AuthSettings(jwks_url="https://idp/jwks.json", hs256_secret=SecretStr("x" * 32)),
        )
    settings = OrdersSettings(
        environment=environment, auth=AuthSettings(jwks_url="https://idp/jwks.json")
    )
    assert settings.auth.jwks_url == "https://idp/jwks.json"


async def test_a_remembered_token_still_expires() -> None:
    auth = AuthSettings(leeway_seconds=0)
    verifier = TokenVerifier(auth, SharedSecret(development_secret(auth)))
    token = mint_token(auth, "short-lived", [], ttl=dt.timedelta(seconds=1))
    assert (await verifier.verify(token)).subject == "short-lived"
    assert (await verifier.verify(token)).subject == "short-lived"  # remembered
    await asyncio.sleep(1.2)
    with pytest.raises(NotAuthenticatedError, match="expired"):
        await verifier.verify(token)
