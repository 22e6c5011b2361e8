"""The publisher's claim: which aggregates one batch takes, and their events in order.

Keys (aggregates) are locked with transaction-scoped advisory locks, so any number of
publishers run side by side without reordering an aggregate's events, and held aggregates
load nothing.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.settings import OutboxSettings

# First half of the two-int advisory lock key, so ours never collide with other users of locks.
LOCK_NAMESPACE = 0x6F7574

# 1. Lock up to `batch` aggregates among the oldest available rows' (a held aggregate's rows
#    wait until its hold ends: see `available_at`), skipping those another publisher holds.
#    Transaction-scoped: released at commit, or when the connection dies.
_LOCK_KEYS = text("""
WITH candidates AS (
    SELECT DISTINCT aggregate_type, aggregate_id FROM (
        SELECT o.aggregate_type, o.aggregate_id FROM outbox_events o
        WHERE o.available_at <= now()
        ORDER BY o.available_at, o.id LIMIT :window
    ) AS oldest
)
SELECT aggregate_type, aggregate_id FROM candidates
WHERE pg_try_advisory_xact_lock(:namespace, hashtext(aggregate_type || ':' || aggregate_id))
LIMIT :batch
""")

# 2. A new statement, so a new snapshot taken after the locks: it sees everything another
#    publisher committed before releasing a key, its deletes and its holds. Step 1 may have
#    taken its snapshot before such a commit and its lock after it, so the holds are checked
#    here. A held aggregate's rows written after its hold began are moved behind it
#    (`parked`); the others' oldest events come back in version order.
_LOAD = text("""
WITH k AS (
    SELECT * FROM unnest(CAST(:types AS text[]), CAST(:ids AS text[]))
    AS k(aggregate_type, aggregate_id)
),
held AS (
    SELECT h.aggregate_type, h.aggregate_id, h.until FROM outbox_key_holds h
    JOIN k USING (aggregate_type, aggregate_id) WHERE h.until > now()
),
parked AS (
    UPDATE outbox_events o SET available_at = held.until FROM held
    WHERE o.aggregate_type = held.aggregate_type AND o.aggregate_id = held.aggregate_id
    AND o.available_at < held.until
)
SELECT e.*, extract(epoch FROM clock_timestamp() - e.occurred_at) AS age_seconds
FROM k CROSS JOIN LATERAL (
    SELECT * FROM outbox_events o
    WHERE o.aggregate_type = k.aggregate_type AND o.aggregate_id = k.aggregate_id
    ORDER BY o.aggregate_version LIMIT :per_key
) AS e
WHERE NOT EXISTS (SELECT 1 FROM held
    WHERE held.aggregate_type = k.aggregate_type AND held.aggregate_id = k.aggregate_id)
ORDER BY e.aggregate_type, e.aggregate_id, e.aggregate_version
""")


async def claim(connection: AsyncConnection, settings: OutboxSettings) -> Sequence[Row[Any]]:
    batch = settings.batch_size
    parameters = {
        "window": settings.candidate_window,
        "batch": batch,
        "namespace": LOCK_NAMESPACE,
    }
    # A second look when every key locked was held: their rows are parked now, so the
    # window shows the aggregates behind them instead.
    for _ in range(2):
        keys = (await connection.execute(_LOCK_KEYS, parameters)).all()
        if not keys:
            return []
        # Spread the batch over the locked keys: fewer publish rounds than one deep key.
        load = {
            "types": [key.aggregate_type for key in keys],
            "ids": [key.aggregate_id for key in keys],
            "per_key": batch // len(keys),
        }
        if rows := (await connection.execute(_LOAD, load)).all():
            return rows
    return []
