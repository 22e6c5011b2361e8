"""Outbox, dead-event and inbox tables.

Rows are INSERTed by the business transaction and DELETEd by the publisher once the broker has
them: no "published" flag and no high-water mark, so a transaction that commits late is never
skipped and the table stays small.
"""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base

# Vacuum the queue table eagerly: it sees an insert and a delete for every event.
_QUEUE_VACUUM = {
    "postgresql_with": {
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "1000",
        "autovacuum_vacuum_insert_scale_factor": "0",
        "autovacuum_vacuum_insert_threshold": "1000",
    }
}


class _EventColumns:
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    source: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(Text)
    aggregate_type: Mapped[str] = mapped_column(Text)
    aggregate_id: Mapped[str] = mapped_column(Text)
    aggregate_version: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dataschema: Mapped[str | None] = mapped_column(Text)
    traceparent: Mapped[str | None] = mapped_column(Text)
    tracestate: Mapped[str | None] = mapped_column(Text)
    # The database clock only: app clocks drift between processes.
    occurred_at: Mapped[dt.datetime] = mapped_column(server_default=func.clock_timestamp())
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboxEvent(_EventColumns, Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version"),
        Index("ix_outbox_events_available_at", "available_at", "id"),
        _QUEUE_VACUUM,
    )

    # Picks the oldest rows' aggregates first; never a watermark ("published up to id N").
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    # When the publisher may look at the row: at once, or when its aggregate's hold ends
    # ('infinity' behind a dead event). Held rows sort last, so a claim never reads them.
    available_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class OutboxKeyHold(Base):
    """An aggregate the publisher leaves alone until `until`: backing off, or dead ('infinity')."""

    __tablename__ = "outbox_key_holds"

    aggregate_type: Mapped[str] = mapped_column(Text, primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(Text, primary_key=True)
    until: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(Text)


class DeadEvent(_EventColumns, Base):
    """Events the publisher gave up on; an operator replays or discards them."""

    __tablename__ = "outbox_dead_events"
    __table_args__ = (Index("ix_outbox_dead_events_aggregate", "aggregate_type", "aggregate_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    dead_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    dead_reason: Mapped[str] = mapped_column(Text)


class InboxEvent(Base):
    """Events a consumer has applied; written in the transaction of the effect."""

    __tablename__ = "inbox_events"

    consumer: Mapped[str] = mapped_column(Text, primary_key=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
