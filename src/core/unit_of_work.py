"""One session, one transaction: commit is explicit, leaving without it rolls back.

Events recorded with `add_event` become outbox rows in the same transaction, so the change and
its announcement commit together or not at all.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from core.errors import ConcurrentUpdateError
from core.events import EventPayload
from core.outbox.tables import InboxEvent
from core.outbox.writer import Aggregate, OutboxWriter, RecordedEvent


class DuplicateEventError(Exception):
    """The consumer already applied this event: the unit of work did nothing."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """Marks a unit of work as the effect of one consumed event, applied at most once."""

    consumer: str
    source: str
    event_id: str


class RequestClaim(Protocol):
    """An idempotent request (core.idempotency): claimed first, its answer stored at commit."""

    @property
    def active(self) -> bool: ...

    async def claim(self, session: AsyncSession) -> None: ...

    async def record(self, session: AsyncSession, result: object) -> None: ...


class UnitOfWork:
    """Subclass it per service and build repositories in `_bind(session)`."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox: OutboxWriter,
        inbox: InboxEntry | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._inbox = inbox
        self._request: RequestClaim | None = None
        self._session: AsyncSession | None = None
        self._events: list[RecordedEvent] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            msg = "the unit of work is used outside `async with`"
            raise RuntimeError(msg)
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self._events = []
        self._bind(self._session)
        try:
            if self._inbox is not None:
                await self._claim_inbox(self._inbox)
            if self._request is not None and self._request.active:
                await self._request.claim(self._session)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        self._events = []
        await session.close()  # rolls back whatever was not committed

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[Self]:
        """For use cases that only read: the repositories on a session without a transaction.

        Under READ COMMITTED each statement sees its own snapshot, inside a transaction or not,
        so reads lose nothing and save the BEGIN and ROLLBACK round trips (docs/performance.md).
        There is nothing to commit."""
        self._session = self._session_factory()
        self._bind(self._session)
        try:
            await self._session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield self
        finally:
            session, self._session = self._session, None
            await session.close()

    def answer_for(self, request: RequestClaim) -> None:
        """Make the transactions of this unit of work claim and record an idempotent request."""
        self._request = request

    def _bind(self, session: AsyncSession) -> None:
        """Build the repositories on the new session."""

    def add_event(self, aggregate: Aggregate, payload: EventPayload) -> None:
        """Record an event about `aggregate`; it is written with the next commit.

        One event per aggregate per commit: its `sequence` is the version the commit creates.
        """
        if any(event.aggregate is aggregate for event in self._events):
            msg = f"{aggregate.id} already has an event in this unit of work"
            raise RuntimeError(msg)
        self._events.append(self._outbox.record(aggregate, payload))

    async def commit(self, result: object = None) -> None:
        """Commit the change with its events; `result` is the use case's outcome, which an
        idempotent request stores as its answer in the same transaction."""
        try:
            if self._events:
                await self.session.flush()  # bumps versions: they become the events' sequence
                await self._outbox.write(self.session, self._events)
            if self._request is not None and self._request.active:
                await self.session.flush()  # the answer shows what is about to commit
                await self._request.record(self.session, result)
            await self.session.commit()
        except StaleDataError as error:
            raise ConcurrentUpdateError from error
        finally:
            self._events = []

    async def _claim_inbox(self, entry: InboxEntry) -> None:
        # Inserted first: a concurrent duplicate waits on the key, then finds it taken.
        claimed = await self.session.scalar(
            insert(InboxEvent)
            .values(consumer=entry.consumer, source=entry.source, event_id=entry.event_id)
            .on_conflict_do_nothing()
            .returning(InboxEvent.event_id)
        )
        if claimed is None:
            raise DuplicateEventError(entry.event_id)
