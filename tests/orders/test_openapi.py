"""The OpenAPI document documents every problem a route can return."""

from fastapi import FastAPI


def test_every_operation_documents_its_problems(app: FastAPI) -> None:
    operations = [
        (path, method, operation)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]
    assert len([path for path, _, _ in operations if path.startswith("/v1/orders")]) == 6
    for path, method, operation in operations:
        problems = {
            status
            for status, response in operation["responses"].items()
            if "application/problem+json" in response.get("content", {})
        }
        assert {"400", "422"} <= problems, (method, path)
        if path.endswith("_id}") or "_id}/" in path:
            assert "404" in problems, (method, path)
        if method == "patch" or path.endswith(("/confirm", "/cancel")):
            assert {"409", "412"} <= problems, (method, path)


def test_amounts_are_documented_as_decimal_strings(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    total = schemas["OrderRead"]["properties"]["total"]
    assert total["type"] == "string"
