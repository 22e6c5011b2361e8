"""The request id: taken from a sane client value, generated otherwise, echoed back."""

import httpx
import pytest


async def test_a_sane_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "abc-123.4:5_6"})
    assert response.headers["x-request-id"] == "abc-123.4:5_6"


@pytest.mark.parametrize("value", ["", "has space", "x" * 129, 'quote"d', "new\\nline"])
async def test_an_insane_request_id_is_replaced(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": value})
    generated = response.headers["x-request-id"]
    assert generated != value
    assert len(generated) == 32
    assert generated.isalnum()


async def test_each_request_gets_its_own_id(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/health")).headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
