"""Settings of the orders service: the core groups, read from `ORDERS_*` variables."""

from importlib.metadata import version

from pydantic import Field
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
