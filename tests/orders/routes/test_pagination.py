"""Listing stays cheap at any depth: OFFSET is bounded, and a cursor pages on by key."""

import httpx
import pytest
from fastapi import FastAPI

from tests.orders.routes.test_orders import assert_problem, place


async def test_a_deep_offset_is_a_422_problem_pointing_to_the_cursor(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/orders", params={"page": 200, "per_page": 100})
    body = assert_problem(response, 422, "invalid-request")
    assert "cursor" in str(body["errors"])
    assert (
        await client.get("/v1/orders", params={"page": 100, "per_page": 100})
    ).status_code == 200


@pytest.mark.parametrize("sort", ["-created_at", "created_at"])
async def test_following_next_cursor_lists_every_order_once_in_order(
    client: httpx.AsyncClient, sort: str
) -> None:
    placed = [(await place(client)).json()["id"] for _ in range(5)]
    expected = placed[::-1] if sort == "-created_at" else placed
    first = (await client.get("/v1/orders", params={"per_page": 2, "sort": sort})).json()
    seen = [order["id"] for order in first["data"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = await client.get(
            "/v1/orders", params={"per_page": 2, "sort": sort, "cursor": cursor}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] is None  # no count(*) when paging by cursor
        seen += [order["id"] for order in body["data"]]
        cursor = body["next_cursor"]
    assert seen == expected


async def test_a_cursor_with_a_page_or_a_forged_cursor_is_a_422_problem(
    client: httpx.AsyncClient,
) -> None:
    await place(client)
    await place(client)
    cursor = (await client.get("/v1/orders", params={"per_page": 1})).json()["next_cursor"]
    with_page = await client.get("/v1/orders", params={"cursor": cursor, "page": 2})
    assert_problem(with_page, 422, "invalid-request")
    for forged in ("not-base64!", "bm9wZQ", "WyJ4IiwgInkiXQ"):
        assert_problem(
            await client.get("/v1/orders", params={"cursor": forged}), 422, "invalid-request"
        )


def test_the_cursor_is_documented(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/v1/orders"]["get"]
    cursor = next(p for p in operation["parameters"] if p["name"] == "cursor")
    assert "keyset" in cursor["description"].lower()
    page = app.openapi()["components"]["schemas"]["Page_OrderSummary_"]
    assert "next_cursor" in page["properties"]
