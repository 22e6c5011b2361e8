"""Order problems, each under the core error it specialises."""

import uuid

from core.errors import BusinessRuleError, ConflictError, NotFoundError
from orders.models import OrderStatus


class OrderNotFoundError(NotFoundError):
    slug = "order-not-found"
    title = "Order not found"

    def __init__(self, order_id: uuid.UUID) -> None:
        super().__init__(f"order {order_id} does not exist")


class OrderWithoutLinesError(BusinessRuleError):
    slug = "order-without-lines"
    title = "Order has no lines"

    def __init__(self) -> None:
        super().__init__("an order needs at least one line")


class UnknownCustomerError(BusinessRuleError):
    slug = "unknown-customer"
    title = "Unknown customer"

    def __init__(self, customer_id: uuid.UUID) -> None:
        message = f"customer {customer_id} does not exist"
        field = {"location": ["body", "customer_id"], "message": message, "code": "unknown"}
        super().__init__(message, extra={"errors": [field]})


class CustomerBlockedError(ConflictError):
    slug = "customer-blocked"
    title = "Customer may not order"

    def __init__(self, customer_id: uuid.UUID) -> None:
        super().__init__(f"customer {customer_id} is blocked from ordering")


class OrderStatusConflictError(ConflictError):
    """The order's status does not allow the requested change."""

    slug = "order-status-conflict"
    title = "Order status does not allow this"

    def __init__(self, order_id: uuid.UUID, status: OrderStatus, action: str) -> None:
        super().__init__(f"order {order_id} is {status}; cannot {action}")
