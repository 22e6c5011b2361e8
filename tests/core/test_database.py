"""Creating the database on first run."""

import uuid

import asyncpg

from core.database import ensure_database, new_id
from orders.settings import OrdersSettings


async def test_ensure_database_creates_a_missing_database_once(settings: OrdersSettings) -> None:
    name = f"orders_ensure_{uuid.uuid4().hex[:8]}"
    target = settings.database.model_copy(update={"name": name})
    try:
        assert await ensure_database(target) is True
        assert await ensure_database(target) is False
        connection = await asyncpg.connect(
            host=target.host, port=target.port, user=target.user, database=name
        )
        assert await connection.fetchval("SELECT current_database()") == name
        await connection.close()
    finally:
        admin = await asyncpg.connect(
            host=target.host, port=target.port, user=target.user, database="postgres"
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def test_new_ids_are_uuid7_in_creation_order() -> None:
    ids = [new_id() for _ in range(100)]
    assert all(i.version == 7 for i in ids)
    assert ids == sorted(ids)
