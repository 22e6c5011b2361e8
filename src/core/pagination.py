"""Page-number pagination: the query parameters and the envelope every list returns."""

from math import ceil
from typing import Annotated

from pydantic import BaseModel, Field


class PageParams(BaseModel):
    # Bounded: deep offsets get slow long before they overflow; filter instead.
    page: Annotated[int, Field(ge=1, le=10_000, description="1-based page number.")] = 1
    per_page: Annotated[int, Field(ge=1, le=100, description="Items per page.")] = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


class Page[T](BaseModel):
    data: list[T]
    total: int = Field(description="Items matching the filters, over all pages.", examples=[42])
    page: int = Field(examples=[1])
    per_page: int = Field(examples=[20])
    total_pages: int = Field(examples=[3])

    @classmethod
    def of(cls, data: list[T], total: int, params: PageParams) -> "Page[T]":
        return cls(
            data=data,
            total=total,
            page=params.page,
            per_page=params.per_page,
            total_pages=ceil(total / params.per_page),
        )
