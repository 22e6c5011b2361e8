"""The service's unit of work: one transaction, with the repositories it needs."""

from core.unit_of_work import UnitOfWork


class OrdersUnitOfWork(UnitOfWork):
    """No repositories yet: `make resource` adds one per resource, built in `_bind`."""
