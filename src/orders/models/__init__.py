"""The ORM models; importing this package registers every table on `Base.metadata`."""

from orders.models.orders import Order, OrderLine, OrderStatus

__all__ = ["Order", "OrderLine", "OrderStatus"]
