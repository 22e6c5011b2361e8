"""The `Order` aggregate and its `OrderLine` children."""

import uuid
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, Numeric, String, func, select
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from core.database import Base, IdMixin, TimestampMixin

MONEY = Numeric(12, 2)


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class Order(IdMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency"),
        Index("ix_orders_customer_id_created_at", "customer_id", "created_at"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        Index("ix_orders_created_at", "created_at"),
    )

    customer_id: Mapped[uuid.UUID]
    status: Mapped[OrderStatus] = mapped_column(
        Enum(
            OrderStatus,
            name="status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [status.value for status in statuses],
        ),
        default=OrderStatus.PENDING,
    )
    currency: Mapped[str] = mapped_column(String(3))
    note: Mapped[str | None] = mapped_column(String(500))
    # Optimistic locking: every UPDATE checks and bumps it; a stale writer gets StaleDataError.
    version_id: Mapped[int] = mapped_column(default=1)
    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order",
        lazy="selectin",
        cascade="all, delete-orphan",
        order_by="OrderLine.position",
    )

    # eager_defaults: RETURNING brings back server-set timestamps, no reload after commit.
    __mapper_args__ = {"version_id_col": version_id, "eager_defaults": True}  # noqa: RUF012

    @hybrid_property
    def total(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal("0.00"))

    @total.inplace.expression
    @classmethod
    def _total_expression(cls) -> ColumnElement[Decimal]:
        line_sum = (
            select(func.coalesce(func.sum(OrderLine.quantity * OrderLine.unit_price), 0))
            .where(OrderLine.order_id == cls.id)
            .scalar_subquery()
        )
        return line_sum.label("total")


class OrderLine(IdMixin, Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(MONEY)
    order: Mapped[Order] = relationship(back_populates="lines", lazy="joined", innerjoin=True)
