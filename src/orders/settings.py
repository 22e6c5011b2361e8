"""Settings of the orders service: the core groups, read from `ORDERS_*` variables."""

from importlib.metadata import version
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import SettingsConfigDict

from core.settings import (
    AuthSettings,
    ConsumerSettings,
    CoreSettings,
    DatabaseSettings,
    EventsSettings,
    ServerSettings,
)

# The service's name: the defaults below that name the service derive from it.
SERVICE = "orders"


class CustomersSettings(BaseModel):
    base_url: Annotated[
        str | None,
        Field(description="The customers service, e.g. http://customers:8000; unset: no check."),
    ] = None
    health_path: str = Field("/health", description="Probed by /health/ready.")
    cache_ttl_seconds: Annotated[
        int, Field(ge=1, description="How long a known customer is cached in Redis.")
    ] = 60
    negative_cache_ttl_seconds: Annotated[int, Field(ge=1, description="For unknown ids.")] = 10

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None


class OrdersSettings(CoreSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: str = Field(SERVICE, description="In logs, traces and /health.")
    service_version: str = Field(
        default_factory=lambda: version(f"{SERVICE}-service"),
        description="The installed package's version, shown by /health.",
    )
    database: DatabaseSettings = DatabaseSettings(name=SERVICE)
    server: ServerSettings = ServerSettings(port=8000)
    events: EventsSettings = EventsSettings(
        source=f"/services/{SERVICE}",
        type_prefix=SERVICE,
        schema_base=f"urn:{SERVICE}:event-schema:",
    )
    consumer: ConsumerSettings = ConsumerSettings(group=SERVICE)
    auth: AuthSettings = AuthSettings(audience=SERVICE)
    payments_stream: str = Field("payments", description="Where the payments service publishes.")
    customers: CustomersSettings = CustomersSettings()
