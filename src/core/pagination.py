"""Pagination: page numbers for the first pages, a keyset cursor for deep listing, and the
envelope every list returns."""

import base64
import binascii
import json
from collections.abc import Sequence
from math import ceil
from typing import Annotated, Protocol, Self, runtime_checkable

from pydantic import BaseModel, Field, model_validator

# OFFSET reads and drops every row before the page: past this many, follow `next_cursor`.
MAX_OFFSET = 10_000


@runtime_checkable
class Positioned(Protocol):
    """An item that knows its place in the list's order: the values a cursor resumes after."""

    @property
    def position(self) -> tuple[str, ...]: ...


def encode_cursor(position: Sequence[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[str]:
    """The position a cursor names; ValueError for anything `encode_cursor` did not make."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError("cursor: not one this API handed out") from error
    if not isinstance(position, list) or not all(isinstance(v, str) for v in position):
        raise ValueError("cursor: not one this API handed out")
    return position


class PageParams(BaseModel):
    page: Annotated[int, Field(ge=1, le=10_000, description="1-based page number.")] = 1
    per_page: Annotated[int, Field(ge=1, le=100, description="Items per page.")] = 20
    cursor: Annotated[
        str | None,
        Field(
            description="Keyset pagination: the `next_cursor` of the previous answer. As fast at "
            f"any depth, where `page` stops at {MAX_OFFSET} items; no `total` then.",
        ),
    ] = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.cursor is not None and self.page != 1:
            raise ValueError("cursor and page exclude each other: send one of them")
        if self.offset > MAX_OFFSET:
            msg = f"page: past the first {MAX_OFFSET} items; follow next_cursor (cursor=) instead"
            raise ValueError(msg)
        return self

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


class Page[T](BaseModel):
    data: list[T]
    total: int | None = Field(
        description="Items matching the filters, over all pages; null when paging by cursor.",
        examples=[42],
    )
    page: int = Field(examples=[1])
    per_page: int = Field(examples=[20])
    total_pages: int | None = Field(description="Null when paging by cursor.", examples=[3])
    next_cursor: str | None = Field(
        description="Send it as `cursor` for the items after these; null after the last.",
        examples=["WyIyMDI2LTExLTIxVDEwOjAwOjAwKzAwOjAwIiwgIjAxOTAiXQ"],
    )

    @classmethod
    def of(cls, data: list[T], total: int | None, params: PageParams) -> "Page[T]":
        last = data[-1] if data and len(data) == params.per_page else None
        return cls(
            data=data,
            total=total,
            page=params.page,
            per_page=params.per_page,
            total_pages=None if total is None else ceil(total / params.per_page),
            next_cursor=encode_cursor(last.position) if isinstance(last, Positioned) else None,
        )
