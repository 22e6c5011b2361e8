"""Generated tokens, hostile or merely odd, against the real app: each is refused with 401 or
403 (the scope the route needs is never granted), never a 500."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms

from core.tokens import development_secret
from orders.settings import OrdersSettings
from tests.core.identity import AUDIENCE, EC_KEY, ISSUER, RSA_KEY, IdentityProvider
from tests.core.test_hostile_tokens import BARE_EC_KEY, P384_KEY, SYMMETRIC_JWK, hostile_app
from tests.orders.clients.customers_service import serving
from tests.support import serve_in_process

NOW = 1_790_000_000  # a fixed instant keeps the examples reproducible ...
EXPIRIES = [NOW + 10**9, NOW - 3600, 0, -1, 10**30, 1.5, "soon", None]  # ... and exp spans it
SIGNERS = {"RS256": RSA_KEY.private, "ES256": EC_KEY.private, "ES384": P384_KEY.private}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
algorithms = st.sampled_from(["RS256", "ES256", "ES384", "HS256", "PS256", "none", "RS1"])
kids = st.sampled_from(["rsa-1", "ec-1", "ec-bare", "oct-1", "unknown"]) | json_values
header_names = st.sampled_from(["typ", "crit", "jku", "x5u", "jwk", "x5c", "b64", "cty", "zip"])
headers = st.fixed_dictionaries(
    {},
    optional={"alg": algorithms | json_values, "kid": kids},
) | st.dictionaries(header_names | st.text(max_size=5), json_values, max_size=4)
payloads = (
    st.fixed_dictionaries(
        {
            "iss": st.sampled_from([ISSUER, "https://evil.test/"]) | json_values,
            "aud": st.sampled_from([AUDIENCE, [AUDIENCE, "x"], "other"]) | json_values,
            "sub": st.sampled_from(["user-1", ""]) | json_values,
            "exp": st.sampled_from(EXPIRIES) | json_values,
        },
        optional={
            "nbf": st.sampled_from([NOW, NOW + 10**9]) | json_values,
            "iat": st.sampled_from([NOW, "yesterday"]) | json_values,
            # never `orders:read`, which GET /v1/orders needs: a token good otherwise is 403
            "scope": st.sampled_from(["orders:write", "", "orders:read-only"]) | st.integers(),
            "scp": st.lists(st.sampled_from(["orders:write", "admin"])) | json_scalars,
        },
    )
    | json_values
)
printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=200)


def segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@st.composite
def tokens(draw: st.DrawFn) -> str:
    header, payload = draw(headers), draw(payloads)
    signing_input = f"{segment(header)}.{segment(payload)}"
    alg = header.get("alg") if isinstance(header, dict) else None
    how = draw(st.sampled_from(["signed", "random", "empty", "garbage"]))
    if how == "garbage":
        return draw(printable)
    if how == "random" or not isinstance(alg, str) or alg not in {*SIGNERS, "HS256"}:
        signature = draw(st.binary(max_size=80)) if how != "empty" else b""
    else:
        key = SIGNERS.get(alg) or development_secret(OrdersSettings().auth).encode()
        algorithm = get_default_algorithms()[alg]
        signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.fixture(scope="module")
async def api(migrated: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    keys = [RSA_KEY.jwk(), EC_KEY.jwk(), BARE_EC_KEY.jwk(with_alg=False), SYMMETRIC_JWK]
    async with serving(IdentityProvider(keys=keys)) as idp:
        # Quiet and without Redis round trips: the examples run in seconds, not minutes.
        quiet = migrated.model_copy(
            update={"logging": migrated.logging.model_copy(update={"level": "WARNING"})}
        )
        app = hostile_app(quiet, idp, enabled=False)
        async with serve_in_process(app, authenticated=False) as client:
            yield client


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=tokens())
async def test_no_generated_token_gets_past_401_or_403(api: httpx.AsyncClient, token: str) -> None:
    response = await api.get("/v1/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in {401, 403}, (token, response.text)
    assert response.headers["content-type"] == "application/problem+json"
