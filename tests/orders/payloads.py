"""Request bodies of the example orders API, shared by the tests that need an order."""


def order_payload(**overrides: object) -> dict[str, object]:
    """A valid `POST /v1/orders` body; keyword arguments replace its fields."""
    payload: dict[str, object] = {
        "customer_id": "0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f",
        "currency": "EUR",
        "note": "ring twice",
        "lines": [
            {"sku": "SKU-1001", "quantity": 2, "unit_price": "19.99"},
            {"sku": "SKU-2002", "quantity": 1, "unit_price": "5.00"},
        ],
    }
    payload.update(overrides)
    return payload
