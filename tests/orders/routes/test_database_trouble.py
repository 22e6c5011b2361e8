"""Database trouble answers a 503/504 problem with Retry-After, and leaks no request data.

Each fault is made certain, never hoped for: a table lock held by the test makes a statement wait
(and time out, or hold the only pooled connection), so no test depends on the machine's speed.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.database import build_engine
from orders.cli import migrate
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.orders.payloads import order_payload
from tests.orders.routes.test_orders import assert_problem, place
from tests.support import (
    PostgresServer,
    connect,
    orders_locked,
    serve_in_process,
    wait_for_lock_waiters,
)

PLANTED = "planted-4f0c2d9e-personal-data"


def app_with(
    settings: OrdersSettings, **database: object
) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    """The app on the test database with some database settings changed, served in process."""
    changed = settings.database.model_copy(update=database)
    return serve_in_process(create_app(settings.model_copy(update={"database": changed})))


def assert_not_leaked(response: httpx.Response, log: str) -> None:
    assert PLANTED not in response.text
    assert PLANTED not in log
    for line in log.splitlines():
        json.loads(line)  # every line stays one JSON object: no bare traceback


async def test_statement_timeout_is_a_504_problem_that_leaks_no_request_data(
    database: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        app_with(database, statement_timeout_ms=300) as client,
        orders_locked(database),
    ):
        capsys.readouterr()
        response = await client.post("/v1/orders", json=order_payload(note=PLANTED))
        log = capsys.readouterr().out
    body = assert_problem(response, 504, "database-timeout")
    assert int(response.headers["retry-after"]) >= 1
    assert body["detail"] == "the database did not answer in time; retry later"
    assert_not_leaked(response, log)
    assert '"database.failed"' in log


async def test_exhausted_pool_is_a_503_problem_with_retry_after(
    database: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with app_with(
        database, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2, statement_timeout_ms=0
    ) as client:
        placed = (await place(client)).json()
        async with orders_locked(database) as lock:
            # This POST holds the only connection while it waits on the lock.
            blocked = asyncio.create_task(
                client.post("/v1/orders", json=order_payload(note=PLANTED))
            )
            await wait_for_lock_waiters(lock, 1)
            capsys.readouterr()
            response = await client.get(f"/v1/orders/{placed['id']}")
            log = capsys.readouterr().out
        assert (await blocked).status_code == 201  # served once the lock was released
    body = assert_problem(response, 503, "database-busy")
    assert int(response.headers["retry-after"]) >= 1
    assert body["detail"] == "every database connection is in use; retry later"
    assert_not_leaked(response, log)


@contextlib.asynccontextmanager
async def orders_insert_fails_with(settings: OrdersSettings, sqlstate: str) -> AsyncIterator[None]:
    """Every INSERT into `orders` fails with `sqlstate`, raised by the server itself."""
    connection = await connect(settings)
    try:
        await connection.execute(f"""
            CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$;
            CREATE TRIGGER fail_insert BEFORE INSERT ON orders
                FOR EACH ROW EXECUTE FUNCTION fail_insert();
        """)
        yield
    finally:
        await connection.execute("DROP FUNCTION IF EXISTS fail_insert() CASCADE")
        await connection.close()


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"], ids=["deadlock", "serialization-failure"])
async def test_a_transaction_conflict_is_a_503_problem_and_the_retry_places_the_order(
    database: OrdersSettings, sqlstate: str, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"Idempotency-Key": "conflict-retry-1"}
    payload = order_payload(note=PLANTED)
    async with app_with(database) as client:
        async with orders_insert_fails_with(database, sqlstate):
            capsys.readouterr()
            response = await client.post("/v1/orders", json=payload, headers=headers)
            log = capsys.readouterr().out
        retried = await client.post("/v1/orders", json=payload, headers=headers)
    body = assert_problem(response, 503, "transaction-conflict")
    assert int(response.headers["retry-after"]) >= 1
    assert body["detail"] == "the request met a concurrent one and was not applied; retry it"
    assert_not_leaked(response, log)
    # Nothing of the failed attempt stayed behind, the idempotency key included.
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


@contextlib.asynccontextmanager
async def silent_listener() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word: a database host gone dark."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_a_database_that_never_answers_the_connect_is_a_503_problem(
    database: OrdersSettings,
) -> None:
    async with silent_listener() as port, app_with(database, port=port) as client:
        # Generous: the connect timeout, not asyncpg's own minute, must end the wait.
        async with asyncio.timeout(45):
            response = await client.get("/v1/orders")
    assert_problem(response, 503, "database-unavailable")


async def test_engine_hides_sql_parameters_from_errors(database: OrdersSettings) -> None:
    engine = build_engine(database.database)
    failing = text("SELECT 1 / 0 WHERE CAST(:note AS text) IS NOT NULL")
    try:
        async with engine.connect() as connection:
            with pytest.raises(DBAPIError) as raised:
                await connection.execute(failing, {"note": PLANTED})
    finally:
        await engine.dispose()
    assert PLANTED not in str(raised.value)


@pytest.fixture
def own_postgres(settings: OrdersSettings) -> Iterator[tuple[OrdersSettings, PostgresServer]]:
    """The test settings on a PostgreSQL of the test's own, migrated: the test may stop it."""
    server = PostgresServer()
    try:
        server.start()
        own = settings.model_copy(
            update={"database": settings.database.model_copy(update={"port": server.port})}
        )
        migrate(own)
        yield own, server
    finally:
        server.remove()


async def answer_until(client: httpx.AsyncClient, path: str, wanted: int) -> list[int]:
    """GET `path` until it answers `wanted`; every status seen on the way."""
    seen: list[int] = []
    deadline = asyncio.get_running_loop().time() + 60
    while not seen or seen[-1] != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"never {wanted}: {seen}"
        seen.append((await client.get(path)).status_code)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("pre_ping", [True, False])
async def test_restarted_postgres_is_a_503_problem_until_it_is_back(
    own_postgres: tuple[OrdersSettings, PostgresServer], pre_ping: bool
) -> None:
    settings, server = own_postgres
    async with app_with(settings, pool_pre_ping=pre_ping, pool_timeout_seconds=1) as client:
        path = f"/v1/orders/{(await place(client)).json()['id']}"
        await asyncio.to_thread(server.stop)
        response = await client.get(path)
        assert_problem(response, 503, "database-unavailable")
        assert int(response.headers["retry-after"]) >= 1
        await asyncio.to_thread(server.start)
        # Pooled connections died with the server: each is replaced, never a 500.
        assert set(await answer_until(client, path, 200)) <= {200, 503}
