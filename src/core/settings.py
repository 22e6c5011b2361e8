"""Settings shared by every service: environment, database, Redis, HTTP server and logging."""

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import URL

# Values copied from .env.example that must never reach a shared environment.
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "password"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    user: str = "postgres"
    password: SecretStr = SecretStr("")
    name: str = "orders"
    pool_size: Annotated[int, Field(ge=1, description="Connections kept open per process.")] = 10
    max_overflow: Annotated[int, Field(ge=0, description="Extra connections under bursts.")] = 0
    pool_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    statement_timeout_ms: Annotated[int, Field(ge=0, description="0 disables it.")] = 5000
    echo: bool = False

    def url(self, *, database: str | None = None) -> URL:
        """The asyncpg URL; `database` points it at another database on the same server."""
        return URL.create(
            "postgresql+asyncpg",
            username=self.user,
            password=self.password.get_secret_value() or None,
            host=self.host,
            port=self.port,
            database=database or self.name,
        )


class RedisSettings(BaseModel):
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    socket_timeout_seconds: Annotated[float, Field(gt=0)] = 2.0


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1
    docs_enabled: Annotated[
        bool | None, Field(description="Serve /docs and /openapi.json; unset: only in development.")
    ] = None
    readiness_timeout_seconds: Annotated[float, Field(gt=0)] = 1.0


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "console"] = "json"


class BuildInfo(BaseModel):
    """Stamped into the image at build time and shown by /health."""

    commit: str = "unknown"
    time: str = "unknown"


class CoreSettings(BaseSettings):
    """Every value comes from the environment (or .env), nested groups joined with `__`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    service_name: str = "service"
    service_version: str = "0.0.0"
    environment: Environment = Environment.DEVELOPMENT
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    build: BuildInfo = BuildInfo()

    @property
    def docs_enabled(self) -> bool:
        if self.server.docs_enabled is None:
            return self.environment is Environment.DEVELOPMENT
        return self.server.docs_enabled

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment in {Environment.DEVELOPMENT, Environment.TEST}:
            return self
        placeholders = [path for path, value in _secrets(self) if value in PLACEHOLDER_SECRETS]
        if placeholders:
            msg = (
                f"placeholder secrets are refused in {self.environment}: {', '.join(placeholders)}"
            )
            raise ValueError(msg)
        return self


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append((prefix + name, value.get_secret_value()))
        elif isinstance(value, BaseModel):
            found.extend(_secrets(value, f"{prefix}{name}__"))
    return found
