"""Settings of the orders service: the core groups, read from `ORDERS_*` variables."""

from importlib.metadata import version

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.settings import ConsumerSettings, CoreSettings, EventsSettings


class OrdersSettings(CoreSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: str = "orders"
    service_version: str = version("orders-service")
    events: EventsSettings = EventsSettings(
        source="/services/orders", type_prefix="orders", schema_base="urn:orders:event-schema:"
    )
    consumer: ConsumerSettings = ConsumerSettings(group="orders")
    payments_stream: str = Field("payments", description="Where the payments service publishes.")
