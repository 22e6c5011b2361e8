"""Idempotency keys: a retried POST gets the first answer back instead of acting twice.

The key, a hash of the request and the response are written by the unit of work in the same
transaction as the business change: a crash leaves both or neither. While that transaction runs
it holds an advisory lock on the key, so a concurrent request with the same key gets 409 at once
instead of waiting; once it commits, a retry finds the stored response and gets it back with
`Idempotent-Replayed: true`. The same key with another request is 422. Keys belong to the caller
(the token's subject) and expire after `idempotency.ttl_seconds`; the publisher purges them.

The dependency answers a key already answered (or in progress) before the route runs, so nothing
the use case asks elsewhere first, such as another service, can turn a replay into an error.
A route opts in by taking the dependency (which joins the request's unit of work) and telling how
its answer looks (`idempotency.present_with(...)`); its service passes the use case's result to
`uow.commit(result=...)`, which stores the answer.
"""

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Header, Request
from fastapi.responses import Response
from sqlalchemy import Integer, LargeBinary, Text, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base
from core.errors import BusinessRuleError, ConflictError
from core.resources import resources_of
from core.security import current_principal

log = structlog.get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
_PURGE_BATCH = 1000
_PURGE = text(
    "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY("
    " SELECT ctid FROM idempotency_keys WHERE expires_at <= now()"
    " LIMIT :batch FOR UPDATE SKIP LOCKED))"
)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"

    subject: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class IdempotencyKeyReusedError(BusinessRuleError):
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused for another request"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request; use a new key")


class IdempotencyKeyInUseError(ConflictError):
    slug = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is in progress"

    def __init__(self) -> None:
        super().__init__(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            headers={"Retry-After": "1"},
        )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def to_response(
        self, *, replayed: bool = False, extra: Mapping[str, str] | None = None
    ) -> Response:
        """`extra`: headers the route's dependencies set (a returned Response does not get
        them from FastAPI), such as the rate-limit ones."""
        headers = {**(extra or {}), **self.headers}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.body, status_code=self.status, headers=headers)


class ReplayedResponse(Exception):  # noqa: N818 - not an error: the answer to send instead
    def __init__(self, stored: StoredResponse) -> None:
        super().__init__("replaying a stored response")
        self.stored = stored


@dataclass(slots=True)
class Idempotency:
    """One request's key (None without the header) and how its route presents a result."""

    key: str | None
    subject: str
    request_hash: str
    ttl_seconds: int
    _present: Callable[[Any], StoredResponse] | None = None
    _answer: StoredResponse | None = field(default=None, repr=False)

    def present_with(self, present: Callable[[Any], StoredResponse]) -> None:
        """Opt the route in: `present(result)` builds the answer that is stored and sent."""
        self._present = present

    @property
    def active(self) -> bool:
        return self.key is not None and self._present is not None

    def answer(self, result: object) -> StoredResponse:
        if self._present is None:
            msg = "present_with() was not called for this route"
            raise RuntimeError(msg)
        if self._answer is None:
            self._answer = self._present(result)
        return self._answer

    async def claim(self, session: AsyncSession) -> None:
        """First in the transaction: 409 while another holds the key, replay if it is done."""
        locked = await session.scalar(
            select(func.pg_try_advisory_xact_lock(func.hashtextextended(self._lock_name, 0)))
        )
        if not locked:
            raise IdempotencyKeyInUseError
        found = await session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.subject == self.subject,
                IdempotencyRecord.key == self.key,
                IdempotencyRecord.expires_at > func.now(),
            )
        )
        if found is None:
            return
        if found.request_hash != self.request_hash:
            raise IdempotencyKeyReusedError
        raise ReplayedResponse(StoredResponse(found.status, found.headers, found.body))

    async def answer_stored(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Before the use case runs: replay a stored answer, 409 while the key is in progress.

        The use case may call other services before its transaction opens; what they answer now
        must not change the answer a retry gets. Each statement runs in its own transaction, so
        the lock is only tested, not kept: the unit of work claims the key again, for good."""
        async with sessions() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            await self.claim(session)

    async def record(self, session: AsyncSession, result: object) -> None:
        """Last in the transaction: the answer is stored with the change it reports."""
        answer = self.answer(result)
        values = {
            "request_hash": self.request_hash,
            "status": answer.status,
            "headers": answer.headers,
            "body": answer.body,
            "created_at": func.now(),
            "expires_at": func.now() + dt.timedelta(seconds=self.ttl_seconds),
        }
        # A row still here has expired (claim found none alive): it is replaced.
        await session.execute(
            insert(IdempotencyRecord)
            .values(subject=self.subject, key=self.key, **values)
            .on_conflict_do_update(index_elements=["subject", "key"], set_=values)
        )

    @property
    def _lock_name(self) -> str:
        return f"idempotency {self.subject} {self.key}"


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """The same request in other whitespace or key order hashes the same."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(f"{method} {path}?{query}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


async def idempotency_key(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Any unique string (a UUID): a retry with it gets the first answer back.",
        ),
    ] = None,
) -> Idempotency:
    resources = resources_of(request)
    body = await request.body() if idempotency_key is not None else b""
    principal = current_principal(request)  # the route's `authorize` ran before
    idempotency = Idempotency(
        key=idempotency_key,
        subject=principal.subject if principal is not None else "",
        request_hash=request_hash(request.method, request.url.path, request.url.query, body),
        ttl_seconds=resources.settings.idempotency.ttl_seconds,
    )
    if idempotency_key is not None:
        await idempotency.answer_stored(resources.session_factory)
    return idempotency


async def purge_expired(engine: AsyncEngine) -> int:
    """Delete expired keys in small batches, skipping rows a transaction holds; how many went."""
    purged = 0
    while True:
        async with engine.begin() as connection:
            result = await connection.execute(_PURGE, {"batch": _PURGE_BATCH})
        purged += result.rowcount
        if result.rowcount < _PURGE_BATCH:
            return purged


async def purge_periodically(engine: AsyncEngine, interval: float, stop: asyncio.Event) -> None:
    """Run `purge_expired` every `interval` seconds until `stop` (in the publisher process)."""
    while not stop.is_set():
        try:
            purged = await purge_expired(engine)
        except (OSError, SQLAlchemyError) as error:  # the database is away: next time
            log.warning("idempotency.purge_failed", error=str(error))
        else:
            if purged:
                log.info("idempotency.purged", keys=purged)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _replay(request: Request, error: Exception) -> Response:
    assert isinstance(error, ReplayedResponse)  # noqa: S101 - registered for it only
    resources_of(request).metrics.idempotent_replays.inc()
    return error.stored.to_response(replayed=True)


def install_replay_handler(app: FastAPI) -> None:
    app.add_exception_handler(ReplayedResponse, _replay)


def stored_json(status: HTTPStatus, body: bytes, headers: dict[str, str]) -> StoredResponse:
    return StoredResponse(int(status), {"Content-Type": "application/json", **headers}, body)
