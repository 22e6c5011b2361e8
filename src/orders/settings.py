"""Settings of the orders service: the core groups, read from `ORDERS_*` variables."""

from importlib.metadata import version
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from core.settings import AuthSettings, ConsumerSettings, CoreSettings, EventsSettings


class CustomersSettings(BaseModel):
    base_url: Annotated[
        str | None,
        Field(description="The customers service, e.g. http://customers:8000; unset: no check."),
    ] = None
    health_path: str = Field("/health", description="Probed by /health/ready.")
    cache_ttl_seconds: Annotated[int, Field(ge=1)] = 60
    negative_cache_ttl_seconds: Annotated[int, Field(ge=1, description="For unknown ids.")] = 10

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None


class OrdersSettings(CoreSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: str = Field("orders", description="In logs, traces and /health.")
    service_version: str = Field(
        default_factory=lambda: version("orders-service"),
        description="The installed package's version, shown by /health.",
    )
    events: EventsSettings = EventsSettings(
        source="/services/orders", type_prefix="orders", schema_base="urn:orders:event-schema:"
    )
    consumer: ConsumerSettings = ConsumerSettings(group="orders")
    auth: AuthSettings = AuthSettings(audience="orders")
    payments_stream: str = Field("payments", description="Where the payments service publishes.")
    customers: CustomersSettings = CustomersSettings()
