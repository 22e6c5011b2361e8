"""The floor: the orders endpoints the benchmark loads, written by hand with no layers.

Starlette routing, one asyncpg pool and orjson; the same SQL effects and the same JSON as the
template (tests/benchmarks/test_floor.py checks that), and no validation, unit of work, logging,
tracing or metrics. Run by `orders serve`'s own server code, so both sit behind the same uvicorn
settings.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from math import ceil
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uuid6 import uuid7

from core.pagination import encode_cursor
from orders.settings import OrdersSettings

# One statement: the order and its lines, joined.
GET_ORDER = """
SELECT o.id, o.customer_id, o.status, o.currency, o.note, o.version_id, o.created_at,
       o.updated_at, l.id AS line_id, l.sku, l.quantity, l.unit_price
FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
WHERE o.id = $1
ORDER BY l.position
"""
LIST_PAGE = """
SELECT o.id, o.customer_id, o.status, o.currency,
       (SELECT coalesce(sum(l.quantity * l.unit_price), 0) FROM order_lines l
        WHERE l.order_id = o.id) AS total,
       o.version_id, o.created_at, o.updated_at
FROM orders o
ORDER BY o.created_at DESC, o.id DESC
LIMIT $1 OFFSET $2
"""
COUNT = "SELECT count(*) FROM orders"
INSERT_ORDER = """
INSERT INTO orders (id, customer_id, status, currency, note, version_id)
VALUES ($1, $2, 'pending', $3, $4, 1)
RETURNING created_at, updated_at
"""
INSERT_LINES = """
INSERT INTO order_lines (id, order_id, position, sku, quantity, unit_price)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::int[], $6::numeric[])
"""
INSERT_EVENT = """
INSERT INTO outbox_events (event_id, source, type, subject, topic, aggregate_type, aggregate_id,
                           aggregate_version, data, dataschema, traceparent, tracestate)
VALUES ($1, $2, $3, $4, 'orders', 'order', $5, 1, $6, $7, NULL, NULL)
"""
JSON = "application/json"


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid7().bytes)


def money(amount: Decimal) -> str:
    return f"{amount:.2f}"


def dump(content: object) -> bytes:
    # asyncpg's UUIDs are not uuid.UUID to orjson: the handlers pass them as strings.
    return orjson.dumps(content, option=orjson.OPT_UTC_Z)


def pool(request: Request) -> asyncpg.Pool:
    found: asyncpg.Pool = request.state.pool
    return found


async def get_order(request: Request) -> Response:
    try:
        order_id = uuid.UUID(request.path_params["order_id"])
    except ValueError:
        return Response(status_code=422)
    rows = await pool(request).fetch(GET_ORDER, order_id)
    if not rows:
        return Response(status_code=404)
    first = rows[0]
    lines = [
        {
            "sku": r["sku"],
            "quantity": r["quantity"],
            "unit_price": r["unit_price"],
            "id": str(r["line_id"]),
        }
        for r in rows
        if r["line_id"] is not None
    ]
    total = sum((line["quantity"] * line["unit_price"] for line in lines), Decimal("0.00"))
    for line in lines:
        line["unit_price"] = money(line["unit_price"])
    body = {
        "currency": first["currency"],
        "note": first["note"],
        "id": str(first["id"]),
        "customer_id": str(first["customer_id"]),
        "status": first["status"],
        "total": money(total),
        "version": first["version_id"],
        "lines": lines,
        "created_at": first["created_at"],
        "updated_at": first["updated_at"],
    }
    headers = {"etag": f'"{first["version_id"]}"'}
    return Response(dump(body), media_type=JSON, headers=headers)


async def list_orders(request: Request) -> Response:
    page = int(request.query_params.get("page", 1))
    per_page = int(request.query_params.get("per_page", 20))
    async with pool(request).acquire() as connection:
        rows = await connection.fetch(LIST_PAGE, per_page, (page - 1) * per_page)
        total = await connection.fetchval(COUNT)
    data = [
        {
            "id": str(r["id"]),
            "customer_id": str(r["customer_id"]),
            "status": r["status"],
            "currency": r["currency"],
            "total": money(r["total"]),
            "version": r["version_id"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
        for r in rows
    ]
    # A full page ends with the cursor to the next one, as the template's does.
    last = rows[-1] if len(rows) == per_page else None
    body = {
        "data": data,
        "total": total,
        "page": page,
        "per_page": per_page,
        "total_pages": ceil(total / per_page),
        "next_cursor": last and encode_cursor((last["created_at"].isoformat(), str(last["id"]))),
    }
    return Response(dump(body), media_type=JSON)


async def place_order(request: Request) -> Response:
    settings: OrdersSettings = request.state.settings
    payload = orjson.loads(await request.body())
    order_id, customer_id = new_id(), uuid.UUID(payload["customer_id"])
    lines: list[dict[str, Any]] = [
        {
            "sku": line["sku"],
            "quantity": int(line["quantity"]),
            "unit_price": Decimal(line["unit_price"]),
        }
        for line in payload["lines"]
    ]
    line_ids = [new_id() for _ in lines]
    total = money(sum((line["quantity"] * line["unit_price"] for line in lines), Decimal("0.00")))
    for line in lines:
        line["unit_price"] = money(line["unit_price"])
    event = {
        "order_id": str(order_id),
        "customer_id": str(customer_id),
        "currency": payload["currency"],
        "total": total,
        "lines": lines,
    }
    event_type = f"{settings.events.type_prefix}.order.placed.v1"
    async with pool(request).acquire() as connection, connection.transaction():
        created = await connection.fetchrow(
            INSERT_ORDER, order_id, customer_id, payload["currency"], payload.get("note")
        )
        await connection.execute(
            INSERT_LINES,
            line_ids,
            [order_id] * len(lines),
            list(range(len(lines))),
            [line["sku"] for line in lines],
            [line["quantity"] for line in lines],
            [Decimal(line["unit_price"]) for line in lines],
        )
        await connection.execute(
            INSERT_EVENT,
            new_id(),
            settings.events.source,
            event_type,
            f"order/{order_id}",
            str(order_id),
            orjson.dumps(event).decode(),
            f"{settings.events.schema_base}{event_type}",
        )
    assert created is not None  # noqa: S101 - INSERT ... RETURNING returns its row
    body = {
        "currency": payload["currency"],
        "note": payload.get("note"),
        "id": order_id,
        "customer_id": customer_id,
        "status": "pending",
        "total": total,
        "version": 1,
        "lines": [{**line, "id": line_id} for line, line_id in zip(lines, line_ids, strict=True)],
        "created_at": created["created_at"],
        "updated_at": created["updated_at"],
    }
    headers = {"etag": '"1"', "location": f"/v1/orders/{order_id}"}
    return Response(dump(body), status_code=201, media_type=JSON, headers=headers)


def create_app(settings: OrdersSettings | None = None) -> Starlette:
    settings = settings or OrdersSettings()
    db = settings.database

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[dict[str, object]]:
        # The template's connection settings, and a fixed pool of the template's size.
        server_settings = {
            "timezone": "UTC",
            "statement_timeout": str(db.statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(db.idle_in_transaction_timeout_ms),
        }
        async with asyncpg.create_pool(
            host=db.host,
            port=db.port,
            user=db.user,
            password=db.password.get_secret_value() or None,
            database=db.name,
            min_size=db.pool_size,
            max_size=db.pool_size,
            server_settings=server_settings,
        ) as connections:
            yield {"pool": connections, "settings": settings}

    return Starlette(
        routes=[
            Route("/v1/orders/{order_id}", get_order, methods=["GET"]),
            Route("/v1/orders", list_orders, methods=["GET"]),
            Route("/v1/orders", place_order, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    from orders.cli import serve

    serve(OrdersSettings(), app="benchmarks.floor:create_app")
