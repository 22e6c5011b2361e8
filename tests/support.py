"""Helpers shared by the tests."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from orders.settings import OrdersSettings
from orders.unit_of_work import OrdersUnitOfWork


@asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it in process, as a server would."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})  # what uvicorn does with lifespan state
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


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


async def connect(settings: OrdersSettings, database: str | None = None) -> asyncpg.Connection:
    db = settings.database
    return await asyncpg.connect(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password.get_secret_value() or None,
        database=database or db.name,
    )


def drop_database(settings: OrdersSettings) -> None:
    """Drop the settings' database, from outside any running event loop."""

    async def drop() -> None:
        connection = await connect(settings, "postgres")
        try:
            await connection.execute(
                f'DROP DATABASE IF EXISTS "{settings.database.name}" WITH (FORCE)'
            )
        finally:
            await connection.close()

    asyncio.run(drop())


type NewUow = Callable[[], OrdersUnitOfWork]
