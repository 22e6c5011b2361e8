"""Settings of the orders service: the core groups, read from `ORDERS_*` variables."""

from importlib.metadata import version

from pydantic_settings import SettingsConfigDict

from core.settings import CoreSettings


class OrdersSettings(CoreSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    service_name: str = "orders"
    service_version: str = version("orders-service")
