"""Order DTOs: what clients send and what they get back."""

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PrivateAttr, model_validator

from core.pagination import PageParams, decode_cursor
from orders.models import OrderStatus

Sku = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Z0-9][A-Z0-9._-]*$",
        description="Stock keeping unit, upper case.",
        examples=["SKU-1001"],
    ),
]
Quantity = Annotated[int, Field(gt=0, le=10_000, description="Units ordered.", examples=[2])]
Money = Annotated[
    Decimal,
    # Always two decimals on the wire, as a string: no float rounding anywhere.
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
    Field(
        ge=0,
        max_digits=12,
        decimal_places=2,
        description="Amount in the order's currency, sent and returned as a decimal string.",
        examples=["19.99"],
    ),
]
# A computed amount: as precise as its lines, with no digit limit of its own.
Total = Annotated[
    Decimal,
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str, when_used="json"),
    Field(description="Sum of the lines, as a decimal string.", examples=["44.98"]),
]
Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["EUR"])
]
Note = Annotated[str, Field(max_length=500, description="Free text for the order.")]
MAX_LINES = 100


class _Strict(BaseModel):
    # Strict types refuse nonsense such as `"quantity": false`; unknown fields are errors.
    model_config = ConfigDict(strict=True, extra="forbid")


class OrderLineBase(_Strict):
    sku: Sku
    quantity: Quantity
    # Decimal from JSON arrives as a string or number; strict mode would refuse both.
    unit_price: Annotated[Money, Field(strict=False)]


class OrderLineCreate(OrderLineBase):
    pass


class OrderLineRead(OrderLineBase):
    model_config = ConfigDict(from_attributes=True, strict=False)

    id: uuid.UUID


class OrderBase(_Strict):
    currency: Currency
    note: Note | None = None


class OrderCreate(OrderBase):
    customer_id: Annotated[uuid.UUID, Field(strict=False, examples=[uuid.UUID(int=7)])]
    lines: Annotated[
        list[OrderLineCreate],
        Field(max_length=MAX_LINES, description="At least one line is required."),
    ]


class OrderUpdate(_Strict):
    """Fields left out stay as they are; `lines` replaces every line."""

    note: Note | None = None
    lines: Annotated[list[OrderLineCreate] | None, Field(max_length=MAX_LINES)] = None

    @model_validator(mode="after")
    def _lines_are_a_list_when_given(self) -> Self:
        if "lines" in self.model_fields_set and self.lines is None:
            raise ValueError("lines, when given, is a list (send [] to see why that is refused)")
        return self


class OrderRead(OrderBase):
    model_config = ConfigDict(from_attributes=True, strict=False)

    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    total: Total
    version: int = Field(validation_alias="version_id", description="Bumped by every change.")
    lines: list[OrderLineRead]
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderSummary(BaseModel):
    """One row of the list: the order without its lines."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    currency: str
    total: Total
    version: int = Field(validation_alias="version_id")
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def position(self) -> tuple[str, ...]:
        """Where it sits in the list's order (created_at, then id): what a cursor resumes after."""
        return self.created_at.isoformat(), str(self.id)


class OrderFilters(PageParams):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus | None = None
    customer_id: uuid.UUID | None = None
    sort: Literal["created_at", "-created_at"] = Field(
        "-created_at", description="`created_at` oldest first, `-created_at` newest first."
    )
    _after: tuple[dt.datetime, uuid.UUID] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cursor_names_an_order(self) -> Self:
        if self.cursor is not None:
            position = decode_cursor(self.cursor)
            try:
                created_at, order_id = position
                after = dt.datetime.fromisoformat(created_at), uuid.UUID(order_id)
            except ValueError as error:
                raise ValueError("cursor: not one this API handed out") from error
            if after[0].tzinfo is None:
                raise ValueError("cursor: not one this API handed out")
            self._after = after
        return self

    @property
    def after(self) -> tuple[dt.datetime, uuid.UUID] | None:
        """The (created_at, id) of the last order already listed, when paging by cursor."""
        return self._after
