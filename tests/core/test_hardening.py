"""Every response's security headers; bodies refused before they are read; CORS; gzip; 504."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from core.settings import HttpSettings
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.support import serve_in_process


def with_http(settings: OrdersSettings, **http: object) -> OrdersSettings:
    return settings.model_copy(update={"http": settings.http.model_copy(update=http)})


async def test_api_responses_carry_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/v1/nowhere")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" not in response.headers  # plain HTTP


async def test_https_adds_hsts_and_the_docs_page_may_load_its_assets(
    database: OrdersSettings,
) -> None:
    server = database.server.model_copy(update={"docs_enabled": True})
    app = create_app(database.model_copy(update={"server": server}))
    async with serve_in_process(app) as client:
        client.base_url = httpx.URL("https://test")
        docs = await client.get("/docs")
    assert docs.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


async def test_a_declared_oversized_body_is_refused_unread(database: OrdersSettings) -> None:
    pulled = 0

    async def ten_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(160):
            pulled += 65536
            yield b" " * 65536

    async with serve_in_process(create_app(with_http(database, max_body_bytes=100_000))) as client:
        declared = await client.post(
            "/v1/orders",
            content=b"{}" + b" " * 200_000,
            headers={"content-type": "application/json"},
        )
        streamed = await client.post(
            "/v1/orders", content=ten_megabytes(), headers={"content-type": "application/json"}
        )
    assert declared.json()["detail"] == "the body is over 100000 bytes"
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/content-too-large"
    assert pulled < 10 * 1024 * 1024  # refused part way: never read in full


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_that_is_not_json_is_a_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/v1/orders", content=b'{"a": 1}', headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unsupported-media-type"


async def test_a_slow_request_is_a_504(database: OrdersSettings) -> None:
    app = create_app(with_http(database, request_timeout_seconds=0.2))

    async def slow() -> None:
        await asyncio.sleep(2)

    app.add_api_route("/slow", slow)
    async with serve_in_process(app) as client:
        response = await client.get("/slow")
    assert response.status_code == 504
    assert response.json()["detail"] == "the request took longer than 0.2 s"


async def test_large_responses_are_gzipped_when_asked(client: httpx.AsyncClient) -> None:
    for _ in range(10):
        await client.post("/v1/orders", json=order_payload())
    response = await client.get("/v1/orders", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["total"] == 10
    small = await client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


async def test_cors_answers_only_the_configured_origins(database: OrdersSettings) -> None:
    settings = with_http(database, cors_origins=["https://shop.example"])
    async with serve_in_process(create_app(settings)) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        allowed = await client.options(
            "/v1/orders", headers={"Origin": "https://shop.example", **preflight}
        )
        other = await client.options(
            "/v1/orders", headers={"Origin": "https://evil.example", **preflight}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in other.headers


def test_a_wildcard_origin_with_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be an origin when credentials"):
        HttpSettings(cors_origins=["*"], cors_allow_credentials=True)
