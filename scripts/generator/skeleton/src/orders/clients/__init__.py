"""Clients of other services, in this service's terms (`core.http_client` underneath)."""

from orders.settings import OrdersSettings


def downstreams(_settings: OrdersSettings) -> dict[str, str]:
    """The health URL of each service we call, by name: `/health/ready` reports them."""
    return {}
