"""One session, one transaction: commit is explicit, leaving without it rolls back."""

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from core.errors import ConcurrentUpdateError


class UnitOfWork:
    """Subclass it per service and build repositories in `_bind(session)`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            msg = "the unit of work is used outside `async with`"
            raise RuntimeError(msg)
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self._bind(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        await session.close()  # rolls back whatever was not committed

    def _bind(self, session: AsyncSession) -> None:
        """Build the repositories on the new session."""

    async def commit(self) -> None:
        try:
            await self.session.commit()
        except StaleDataError as error:
            raise ConcurrentUpdateError from error
