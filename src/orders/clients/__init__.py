"""Clients of other services, in this service's terms."""

from orders.settings import OrdersSettings


def downstreams(settings: OrdersSettings) -> dict[str, str]:
    """The health URL of each service we call, by name: `/health/ready` reports them."""
    customers = settings.customers
    if customers.base_url is None:
        return {}
    return {"customers": customers.base_url + customers.health_path}
