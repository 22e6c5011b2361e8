"""The orders HTTP API, through the ASGI app on the real test database."""

import asyncio
import uuid

import httpx
import pytest

from tests.orders.payloads import order_payload

PROBLEM = "application/problem+json"


async def place(client: httpx.AsyncClient, **overrides: object) -> httpx.Response:
    response = await client.post("/v1/orders", json=order_payload(**overrides))
    assert response.status_code == 201, response.text
    return response


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


async def test_place_order_returns_201_with_location_etag_and_total(
    client: httpx.AsyncClient,
) -> None:
    response = await place(client)
    body = response.json()
    assert response.headers["location"] == f"/v1/orders/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["status"] == "pending"
    assert body["total"] == "44.98"
    assert body["version"] == 1
    assert [line["sku"] for line in body["lines"]] == ["SKU-1001", "SKU-2002"]
    assert uuid.UUID(body["id"]).version == 7


async def test_amounts_always_have_two_decimals(client: httpx.AsyncClient) -> None:
    lines = [{"sku": "A-1", "quantity": 3, "unit_price": 5}]
    body = (await place(client, lines=lines)).json()
    assert body["lines"][0]["unit_price"] == "5.00"
    assert body["total"] == "15.00"


async def test_get_order_returns_what_was_placed(client: httpx.AsyncClient) -> None:
    placed = (await place(client)).json()
    response = await client.get(f"/v1/orders/{placed['id']}")
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == placed


async def test_get_unknown_order_is_a_404_problem(client: httpx.AsyncClient) -> None:
    order_id = uuid.uuid4()
    body = assert_problem(await client.get(f"/v1/orders/{order_id}"), 404, "order-not-found")
    assert str(order_id) in str(body["detail"])


async def test_order_without_lines_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    assert_problem(
        await client.post("/v1/orders", json=order_payload(lines=[])), 422, "order-without-lines"
    )
    assert (await client.get("/v1/orders")).json()["total"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", False),
        ("quantity", "2"),
        ("quantity", 0),
        ("unit_price", "1.999"),
        ("unit_price", -1),
        ("sku", "lower-case"),
        ("sku", "X" * 65),
    ],
)
async def test_nonsense_line_values_are_422_naming_the_field(
    client: httpx.AsyncClient, field: str, value: object
) -> None:
    line = {"sku": "SKU-1", "quantity": 1, "unit_price": "1.00", field: value}
    response = await client.post("/v1/orders", json=order_payload(lines=[line]))
    body = assert_problem(response, 422, "invalid-request")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [error["location"] for error in errors] == [["body", "lines", 0, field]]
    assert all(error["message"] and error["code"] for error in errors)


async def test_unknown_fields_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json=order_payload(discount="100%"))
    body = assert_problem(response, 422, "invalid-request")
    assert body["errors"][0]["location"] == ["body", "discount"]  # type: ignore[index]


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/orders", content=b'{"customer_id": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed-request")


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nowhere"), 404, "not-found")


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/orders")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"


async def test_invalid_order_id_is_a_422_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/v1/orders/not-a-uuid"), 422, "invalid-request")
    assert body["errors"][0]["location"] == ["path", "order_id"]  # type: ignore[index]


async def test_list_pages_filters_and_sorts(client: httpx.AsyncClient) -> None:
    customer = str(uuid.uuid4())
    placed = [(await place(client, customer_id=customer)).json()["id"] for _ in range(3)]
    await place(client)  # another customer's order
    await client.post(f"/v1/orders/{placed[0]}/cancel")

    first = (await client.get("/v1/orders", params={"customer_id": customer, "per_page": 2})).json()
    assert [o["id"] for o in first["data"]] == [placed[2], placed[1]]
    assert (first["total"], first["page"], first["per_page"], first["total_pages"]) == (3, 1, 2, 2)

    params: dict[str, str | int] = {"customer_id": customer, "per_page": 2, "page": 2}
    second = (await client.get("/v1/orders", params=params)).json()
    assert [o["id"] for o in second["data"]] == [placed[0]]

    oldest = await client.get("/v1/orders", params={"customer_id": customer, "sort": "created_at"})
    assert [o["id"] for o in oldest.json()["data"]] == placed

    pending = await client.get("/v1/orders", params={"customer_id": customer, "status": "pending"})
    assert [o["id"] for o in pending.json()["data"]] == [placed[2], placed[1]]
    assert set(pending.json()["data"][0]) == {
        "id",
        "customer_id",
        "status",
        "currency",
        "total",
        "version",
        "created_at",
        "updated_at",
    }
    assert pending.json()["data"][0]["total"] == "44.98"


@pytest.mark.parametrize(
    "params", [{"per_page": 101}, {"page": 0}, {"status": "lost"}, {"sort": "total"}, {"x": 1}]
)
async def test_list_refuses_bad_query_parameters(
    client: httpx.AsyncClient, params: dict[str, int | str]
) -> None:
    assert_problem(await client.get("/v1/orders", params=params), 422, "invalid-request")


async def test_patch_with_current_etag_changes_note_and_lines(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    changes = {
        "note": "leave at the door",
        "lines": [{"sku": "SKU-3", "quantity": 3, "unit_price": "1.50"}],
    }
    response = await client.patch(
        f"/v1/orders/{order_id}", json=changes, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == '"2"'
    assert (body["note"], body["total"], body["version"]) == ("leave at the door", "4.50", 2)
    assert [line["sku"] for line in body["lines"]] == ["SKU-3"]
    assert body["updated_at"] > body["created_at"]
    assert (await client.get(f"/v1/orders/{order_id}")).json() == body


async def test_patch_leaves_fields_that_were_not_sent(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    body = (await client.patch(f"/v1/orders/{order_id}", json={"note": None})).json()
    assert body["note"] is None
    assert body["total"] == "44.98"


async def test_patch_with_stale_etag_is_412_and_changes_nothing(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    await client.patch(f"/v1/orders/{order_id}", json={"note": "first"})
    response = await client.patch(
        f"/v1/orders/{order_id}", json={"note": "second"}, headers={"If-Match": '"1"'}
    )
    assert_problem(response, 412, "precondition-failed")
    assert (await client.get(f"/v1/orders/{order_id}")).json()["note"] == "first"


async def test_patch_to_no_lines_is_refused(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    response = await client.patch(f"/v1/orders/{order_id}", json={"lines": []})
    assert_problem(response, 422, "order-without-lines")
    assert len((await client.get(f"/v1/orders/{order_id}")).json()["lines"]) == 2


async def test_confirm_then_cancel_is_a_conflict(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    confirmed = await client.post(f"/v1/orders/{order_id}/confirm", headers={"If-Match": '"1"'})
    assert confirmed.status_code == 200
    assert (confirmed.json()["status"], confirmed.headers["etag"]) == ("confirmed", '"2"')
    assert_problem(await client.post(f"/v1/orders/{order_id}/cancel"), 409, "order-status-conflict")
    patch = await client.patch(f"/v1/orders/{order_id}", json={"note": "late"})
    assert_problem(patch, 409, "order-status-conflict")


async def test_cancelling_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    assert (await client.post(f"/v1/orders/{order_id}/cancel")).json()["status"] == "cancelled"
    body = assert_problem(
        await client.post(f"/v1/orders/{order_id}/cancel"), 409, "order-status-conflict"
    )
    assert "cancelled" in str(body["detail"])
    assert_problem(
        await client.post(f"/v1/orders/{order_id}/confirm"), 409, "order-status-conflict"
    )


async def test_transition_of_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/orders/{uuid.uuid4()}/confirm")
    assert_problem(response, 404, "order-not-found")


async def test_concurrent_patches_with_one_etag_let_exactly_one_win(
    client: httpx.AsyncClient,
) -> None:
    order_id = (await place(client)).json()["id"]
    responses = await asyncio.gather(
        *(
            client.patch(
                f"/v1/orders/{order_id}", json={"note": f"writer {n}"}, headers={"If-Match": '"1"'}
            )
            for n in range(2)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses[0] == 200
    assert statuses[1] in {409, 412}
    winner = next(response.json() for response in responses if response.status_code == 200)
    stored = (await client.get(f"/v1/orders/{order_id}")).json()
    assert (stored["note"], stored["version"]) == (winner["note"], 2)


async def test_a_total_beyond_any_one_price_is_still_an_order(client: httpx.AsyncClient) -> None:
    lines = [{"sku": "SKU-1", "quantity": 10_000, "unit_price": "9999999999.99"}] * 2
    response = await client.post("/v1/orders", json=order_payload(lines=lines))
    assert response.status_code == 201, response.text
    assert response.json()["total"] == "199999999999800.00"


async def test_explicit_null_lines_are_refused(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["id"]
    response = await client.patch(f"/v1/orders/{order_id}", json={"lines": None})
    assert_problem(response, 422, "invalid-request")
    assert (await client.get(f"/v1/orders/{order_id}")).json()["version"] == 1


async def test_a_page_beyond_the_limit_is_a_422_not_a_crash(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orders", params={"page": 10**20})
    assert_problem(response, 422, "invalid-request")
