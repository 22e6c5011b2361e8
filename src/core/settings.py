"""Settings shared by every service: environment, database, Redis, HTTP server and logging."""

import os
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy import URL

# Values copied from .env.example that must never reach a shared environment.
PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "password"})
MIN_HS256_SECRET_BYTES = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class DatabaseSettings(BaseModel):
    host: str = Field("127.0.0.1", description="PostgreSQL host.")
    port: Annotated[int, Field(ge=1, le=65535, description="PostgreSQL port.")] = 5432
    user: str = Field("postgres", description="Role to connect as.")
    password: SecretStr = Field(
        SecretStr(""), description="Empty: no password (trust authentication on the host)."
    )
    name: str = Field("app", description="Database; `orders migrate` creates it if missing.")
    pool_size: Annotated[int, Field(ge=1, description="Connections kept open per process.")] = 10
    max_overflow: Annotated[int, Field(ge=0, description="Extra connections under bursts.")] = 0
    pool_timeout_seconds: Annotated[
        float, Field(gt=0, description="Wait for a free connection before failing.")
    ] = 5.0
    connect_timeout_seconds: Annotated[
        float, Field(gt=0, description="A new connection not established by then fails (503).")
    ] = 5.0
    pool_pre_ping: bool = Field(
        default=True, description="Test each connection on checkout; false saves a round trip."
    )
    statement_timeout_ms: Annotated[int, Field(ge=0, description="0 disables it.")] = 5000
    idle_in_transaction_timeout_ms: Annotated[
        int, Field(ge=0, description="Ends a session stuck inside a transaction; 0 disables it.")
    ] = 60_000

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
    url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="With the password inside, if any."
    )
    socket_timeout_seconds: Annotated[float, Field(gt=0, description="Per command.")] = 2.0


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 in a container.")
    port: Annotated[int, Field(ge=1, le=65535, description="HTTP port.")] = 8000
    workers: Annotated[int, Field(ge=1, description="uvicorn worker processes.")] = 1
    docs_enabled: Annotated[
        bool | None, Field(description="Serve /docs and /openapi.json; unset: only in development.")
    ] = None
    readiness_timeout_seconds: Annotated[
        float, Field(gt=0, description="How long /health/ready waits for each dependency.")
    ] = 1.0
    header_timeout_seconds: Annotated[
        float,
        Field(gt=0, description="A connection whose request headers take longer is closed."),
    ] = 10.0
    keep_alive_timeout_seconds: Annotated[
        int, Field(ge=1, description="An idle kept-alive connection is closed after this.")
    ] = 5
    limit_concurrency: Annotated[
        int | None,
        Field(
            ge=1,
            description="Connections and requests in flight per worker past which new requests "
            "get 503; unset: no limit.",
        ),
    ] = 1000
    shutdown_delay_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="After SIGTERM, readiness answers 503 this long before the server "
            "stops accepting and drains; 0: stop at once.",
        ),
    ] = 5.0


class HttpSettings(BaseModel):
    """What the API accepts and how it answers, beyond each route's own rules."""

    max_body_bytes: Annotated[
        int, Field(ge=1, description="Larger request bodies get 413, unread.")
    ] = 1_048_576
    request_timeout_seconds: Annotated[
        float, Field(gt=0, description="Longer requests get 504.")
    ] = 30.0
    cors_origins: Annotated[
        list[str], Field(description="Origins browsers may call from (a JSON list); none: no CORS.")
    ] = []
    cors_allow_credentials: bool = Field(
        default=False, description="Let those origins send cookies and Authorization."
    )
    trusted_proxies: Annotated[
        list[str],
        Field(description="Addresses whose X-Forwarded-For/-Proto are believed (a JSON list)."),
    ] = []
    hsts_seconds: Annotated[
        int, Field(ge=0, description="Strict-Transport-Security max-age on HTTPS; 0: none.")
    ] = 31_536_000
    gzip_minimum_bytes: Annotated[
        int, Field(ge=1, description="Responses at least this large are gzipped when asked.")
    ] = 1000
    require_if_match: Annotated[
        bool | None,
        Field(
            description="Refuse changes without If-Match (428), so no update is lost; "
            "unset: required outside development and test."
        ),
    ] = None

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Self:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            msg = "CORS: '*' cannot be an origin when credentials are allowed; list the origins"
            raise ValueError(msg)
        return self


class HttpClientSettings(BaseModel):
    """Calls to other services: timeouts, retries and the circuit breaker, for every downstream."""

    connect_timeout_seconds: Annotated[
        float, Field(gt=0, description="To open a connection to a downstream.")
    ] = 1.0
    read_timeout_seconds: Annotated[
        float, Field(gt=0, description="For each read of one attempt's answer.")
    ] = 2.0
    total_timeout_seconds: Annotated[
        float, Field(gt=0, description="For a call with all its retries.")
    ] = 5.0
    max_connections: Annotated[
        int, Field(ge=1, description="Open connections per process, all downstreams together.")
    ] = 100
    max_keepalive_connections: Annotated[
        int, Field(ge=0, description="Idle connections kept for reuse.")
    ] = 20
    retries: Annotated[
        int, Field(ge=0, description="Idempotent calls only; on 502/503/504 and lost connections.")
    ] = 2
    backoff_base_seconds: Annotated[
        float, Field(gt=0, description="Wait before the first retry; doubles per retry, +-20%.")
    ] = 0.1
    backoff_max_seconds: Annotated[
        float,
        Field(gt=0, description="Cap of the doubling, before jitter; a longer Retry-After fails."),
    ] = 2.0
    breaker_threshold: Annotated[
        int,
        Field(
            ge=1, description="Failed attempts (5xx or no answer) in a row that open the breaker."
        ),
    ] = 5
    breaker_reset_seconds: Annotated[
        float, Field(gt=0, description="How long it stays open before one trial call.")
    ] = 30.0


class AuthSettings(BaseModel):
    """Bearer tokens: JWTs from an identity provider (JWKS), or HS256 in development only."""

    jwks_url: Annotated[
        str | None,
        Field(description="The identity provider's JWKS; required outside development and test."),
    ] = None
    issuer: str = Field("urn:service:development", description="`iss` every token must carry.")
    audience: str = Field("service", description="`aud` every token must name.")
    algorithms: Annotated[
        list[Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]],
        Field(min_length=1, description="Accepted with a JWKS (asymmetric only: never HS, none)."),
    ] = ["RS256", "ES256"]
    hs256_secret: SecretStr = Field(
        SecretStr(""),
        description="Development and test only, without a JWKS; empty: a built-in secret.",
    )
    leeway_seconds: Annotated[
        float, Field(ge=0, le=300, description="Clock skew allowed on exp and nbf.")
    ] = 30.0
    jwks_cache_seconds: Annotated[
        float, Field(gt=0, description="How long fetched keys are trusted before a refetch.")
    ] = 300.0
    jwks_refetch_seconds: Annotated[
        float, Field(ge=0, description="An unknown `kid` refetches the keys at most this often.")
    ] = 30.0

    @field_validator("jwks_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _long_enough_secret(self) -> Self:
        # Bytes, not characters: the token is signed with the secret's UTF-8 encoding.
        if 0 < len(self.hs256_secret.get_secret_value().encode()) < MIN_HS256_SECRET_BYTES:
            msg = f"auth.hs256_secret: at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518)"
            raise ValueError(msg)
        return self


class IdempotencySettings(BaseModel):
    ttl_seconds: Annotated[
        int, Field(ge=60, description="How long an Idempotency-Key and its response are kept.")
    ] = 24 * 3600
    purge_interval_seconds: Annotated[
        float, Field(gt=0, description="How often the publisher deletes expired keys.")
    ] = 300.0


class RateLimitSettings(BaseModel):
    """Requests per principal (per client address when anonymous) in a fixed window."""

    enabled: bool = Field(default=True, description="false: no limits, no Redis round trip.")
    window_seconds: Annotated[
        int, Field(ge=1, description="Length of one window; counts start again in the next.")
    ] = 60
    reads: Annotated[int, Field(ge=1, description="Read requests per window.")] = 1200
    writes: Annotated[int, Field(ge=1, description="Write requests per window.")] = 300
    auth_failures: Annotated[
        int,
        Field(
            ge=1,
            description="Failed authentications per client address and window; then 429 "
            "until the window ends, except for tokens already verified.",
        ),
    ] = 60
    fail_open: bool = Field(
        default=True, description="Serve requests while Redis is down (logged and counted)."
    )


class LoggingSettings(BaseModel):
    level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"],
        Field(description="DEBUG adds every SQL statement."),
    ] = "INFO"
    format: Annotated[
        Literal["json", "console"], Field(description="console: readable, for development.")
    ] = "json"
    extra_sensitive_keys: Annotated[
        list[str], Field(description="Masked in logs too, besides password, token, secret ...")
    ] = []


class BuildInfo(BaseModel):
    """Stamped into the image at build time and shown by /health."""

    commit: str = Field("unknown", description="Git commit of the build.")
    time: str = Field("unknown", description="When the image was built.")


class EventsSettings(BaseModel):
    source: str = Field("/services/service", description="CloudEvents `source` of our events.")
    type_prefix: str = Field(
        "service", description="First part of every event type: <prefix>.<noun>.<verb>.v<n>."
    )
    schema_base: str = Field(
        "urn:service:event-schema:", description="`dataschema` is this followed by the type."
    )
    notify: bool = Field(
        default=False,
        description="Send one empty NOTIFY per transaction with events, waking the publisher.",
    )


class OutboxSettings(BaseModel):
    batch_size: Annotated[
        int, Field(ge=1, le=1000, description="Events published per claim, at most.")
    ] = 100
    candidate_window: Annotated[int, Field(ge=1, description="Ready rows scanned for keys.")] = 200
    poll_min_seconds: Annotated[
        float, Field(gt=0, description="Poll interval while events keep coming.")
    ] = 0.02
    poll_max_seconds: Annotated[
        float, Field(gt=0, description="Poll interval when idle (doubling up to it); NOTIFY wakes.")
    ] = 1.0
    publish_timeout_seconds: Annotated[
        float, Field(gt=0, description="For one call to the broker; past it the broker is away.")
    ] = 5.0
    max_attempts: Annotated[int, Field(ge=1, description="Then the event is dead.")] = 10
    backoff_base_seconds: Annotated[
        float, Field(gt=0, description="Hold after an event's first refusal; doubles, +-20%.")
    ] = 1.0
    backoff_max_seconds: Annotated[
        float, Field(gt=0, description="Cap of the doubling before jitter: holds up to 1.2x it.")
    ] = 300.0
    poison_policy: Annotated[
        Literal["block", "skip"],
        Field(description="block: a dead event holds back its aggregate's later events."),
    ] = "block"
    stream_maxlen: Annotated[
        int,
        Field(
            ge=1000,
            description="Redis: about this many entries per stream at most. Past it, what every "
            "consumer group has read is trimmed; a stream still full refuses events, which wait "
            "in the outbox. A stream no group reads keeps its newest.",
        ),
    ] = 1_000_000
    metrics_port: Annotated[int, Field(ge=0, le=65535, description="0 disables it.")] = 9101


class ConsumerSettings(BaseModel):
    group: str = Field("service", description="Redis consumer group; one per service.")
    batch_size: Annotated[
        int, Field(ge=1, le=1000, description="Messages read per fetch, at most.")
    ] = 50
    block_ms: Annotated[
        int, Field(ge=1, description="How long one read waits for new messages, in ms.")
    ] = 1000
    max_retries: Annotated[int, Field(ge=0, description="Retries after the first attempt.")] = 3
    retry_base_seconds: Annotated[float, Field(gt=0, description="Doubles per retry.")] = 1.0
    handler_timeout_seconds: Annotated[
        float, Field(gt=0, description="A handler running longer fails its attempt.")
    ] = 10.0
    dedup_ttl_seconds: Annotated[
        int, Field(ge=60, description="How long Redis remembers a handled event id (lease key).")
    ] = 7 * 24 * 3600
    inbox_retention_seconds: Annotated[
        int,
        Field(
            ge=3600,
            description="How long the database inbox remembers an applied event; the consumer "
            "purges older rows. At least the longest redelivery, dead-letter replays included.",
        ),
    ] = 7 * 24 * 3600
    metrics_port: Annotated[int, Field(ge=0, le=65535, description="0 disables it.")] = 9102


class BrokerSettings(BaseModel):
    """Which broker carries events: the publisher and the consumer both follow `kind`."""

    kind: Annotated[
        Literal["redis", "nats"],
        Field(description="redis: Redis Streams (ORDERS_REDIS__URL); nats: NATS JetStream."),
    ] = "redis"
    nats_url: SecretStr = Field(
        SecretStr("nats://127.0.0.1:4222"), description="With user and password inside, if any."
    )
    nats_duplicate_window_seconds: Annotated[
        float,
        Field(gt=0, description="JetStream drops an event id seen again within it (our streams)."),
    ] = 120.0
    nats_max_msgs: Annotated[
        int, Field(ge=-1, description="Messages an event stream holds at most; -1: no limit.")
    ] = 1_000_000
    nats_max_bytes: Annotated[
        int, Field(ge=-1, description="Bytes an event stream holds at most; -1: no limit.")
    ] = 1024**3
    nats_max_age_seconds: Annotated[
        float,
        Field(
            ge=0,
            description="Messages older than this leave an event stream, read or not; 0: kept "
            "until a size limit. At least the longest consumer outage you ride out.",
        ),
    ] = 7 * 24 * 3600.0
    nats_discard: Annotated[
        Literal["new", "old"],
        Field(
            description="At a size limit, new: the stream refuses events, which wait in the "
            "outbox; old: it drops its oldest messages, read or not."
        ),
    ] = "new"


class CoreSettings(BaseSettings):
    """Every value comes from the environment (or .env), nested groups joined with `__`."""

    # Secrets may also come as files, one per setting: /run/secrets/orders_database__password.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        secrets_dir="/run/secrets",  # pragma: allowlist secret
        secrets_dir_missing="ok",  # pragma: allowlist secret
        secrets_nested_delimiter="__",
        # One variable of a group changes that field only: the service's defaults for the rest
        # of the group (`DatabaseSettings(name=...)` in its settings class) stay.
        nested_model_default_partial_update=True,
    )

    service_name: str = Field("service", description="In logs, traces and /health.")
    service_version: str = Field("0.0.0", description="Defaults to the package version.")
    environment: Environment = Field(
        Environment.DEVELOPMENT,
        description="Outside development and test, placeholder secrets are refused.",
    )
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    build: BuildInfo = BuildInfo()
    events: EventsSettings = EventsSettings()
    outbox: OutboxSettings = OutboxSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    broker: BrokerSettings = BrokerSettings()
    http: HttpSettings = HttpSettings()
    http_client: HttpClientSettings = HttpClientSettings()
    auth: AuthSettings = AuthSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    rate_limit: RateLimitSettings = RateLimitSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment wins over .env, which wins over secret files (nested: `__`)."""
        del settings_cls
        secrets = NestedSecretsSettingsSource(file_secret_settings)
        return init_settings, env_settings, dotenv_settings, secrets

    @model_validator(mode="before")
    @classmethod
    def _plain_log_variables(cls, data: Any) -> Any:
        """LOG_LEVEL and LOG_FORMAT, as operators type them, unless ORDERS_LOGGING__* is set."""
        if not isinstance(data, dict) or isinstance(data.get("logging"), BaseModel):
            return data
        group = dict(data.get("logging") or {})
        for key, variable in (("level", "LOG_LEVEL"), ("format", "LOG_FORMAT")):
            if key not in group and os.environ.get(variable):
                group[key] = os.environ[variable]
        return {**data, "logging": group} if group else data

    @property
    def docs_enabled(self) -> bool:
        if self.server.docs_enabled is None:
            return self.environment is Environment.DEVELOPMENT
        return self.server.docs_enabled

    @property
    def if_match_required(self) -> bool:
        if self.http.require_if_match is None:
            return not self.is_development
        return self.http.require_if_match

    @property
    def is_development(self) -> bool:
        return self.environment in {Environment.DEVELOPMENT, Environment.TEST}

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.is_development:
            return self
        if self.auth.jwks_url is None or self.auth.hs256_secret.get_secret_value():
            msg = (
                f"auth in {self.environment}: set AUTH__JWKS_URL to the identity provider's keys; "
                "HS256 and its shared secret are for development and test only"
            )
            raise ValueError(msg)
        placeholders = [path for path, value in _secrets(self) if _is_placeholder(value)]
        if placeholders:
            msg = (
                f"placeholder secrets are refused in {self.environment}: {', '.join(placeholders)}"
            )
            raise ValueError(msg)
        return self


def _is_placeholder(value: str) -> bool:
    # A URL's password counts too: redis://:change-me@host is a placeholder.
    password = urlsplit(value).password if "://" in value else None
    return value in PLACEHOLDER_SECRETS or password in PLACEHOLDER_SECRETS


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            found.append((prefix + name, value.get_secret_value()))
        elif isinstance(value, BaseModel):
            found.extend(_secrets(value, f"{prefix}{name}__"))
    return found
