"""Settings: environment variables, placeholder secrets, docs switch."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Environment
from orders.main import create_app
from orders.settings import OrdersSettings


def test_nested_groups_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE__NAME", "shop")
    monkeypatch.setenv("ORDERS_DATABASE__POOL_SIZE", "3")
    monkeypatch.setenv("ORDERS_SERVER__PORT", "9000")
    settings = OrdersSettings(_env_file=None)
    assert (settings.database.name, settings.database.pool_size, settings.server.port) == (
        "shop",
        3,
        9000,
    )
    assert settings.database.url().render_as_string(hide_password=False).endswith("/shop")


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_placeholder_secrets_are_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", environment)
    monkeypatch.setenv("ORDERS_AUTH__JWKS_URL", "https://idp.example/jwks.json")
    monkeypatch.setenv("ORDERS_DATABASE__PASSWORD", "change-me")
    with pytest.raises(ValidationError, match="database__password"):
        OrdersSettings(_env_file=None)


def test_secrets_can_be_files_in_a_secrets_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "orders_database__password").write_text("from-a-file")
    settings = OrdersSettings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.database.password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("ORDERS_DATABASE__PASSWORD", "from-the-environment")
    settings = OrdersSettings(_env_file=None, _secrets_dir=tmp_path)
    assert settings.database.password.get_secret_value() == "from-the-environment"


def test_placeholder_secrets_are_accepted_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE__PASSWORD", "change-me")
    settings = OrdersSettings(_env_file=None)
    assert settings.environment is Environment.DEVELOPMENT


@pytest.mark.parametrize(
    ("environment", "override", "served"),
    [("development", None, True), ("production", None, False), ("production", True, True)],
)
def test_docs_are_served_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, environment: str, override: bool | None, served: bool
) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", environment)
    monkeypatch.setenv("ORDERS_AUTH__JWKS_URL", "https://idp.example/jwks.json")
    if override is not None:
        monkeypatch.setenv("ORDERS_SERVER__DOCS_ENABLED", str(override).lower())
    app = create_app(OrdersSettings(_env_file=None))
    paths = {getattr(route, "path", None) for route in app.routes}
    assert ("/docs" in paths, "/openapi.json" in paths) == (served, served)


def test_a_placeholder_password_inside_a_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_ENVIRONMENT", "production")
    monkeypatch.setenv("ORDERS_AUTH__JWKS_URL", "https://idp.example/jwks.json")
    monkeypatch.setenv("ORDERS_REDIS__URL", "redis://:change-me@redis:6379/0")
    with pytest.raises(ValidationError, match="redis__url"):
        OrdersSettings(_env_file=None)


def test_plain_log_variables_work_unless_the_prefixed_ones_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "console")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    settings = OrdersSettings(_env_file=None)
    assert (settings.logging.format, settings.logging.level) == ("console", "DEBUG")
    monkeypatch.setenv("ORDERS_LOGGING__LEVEL", "WARNING")
    assert OrdersSettings(_env_file=None).logging.level == "WARNING"


def test_one_variable_of_a_group_keeps_the_services_other_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Setting one field of a group changes that field only: the service's own defaults for the
    group's other fields (database name, consumer group, audience, event source) stay."""
    defaults = OrdersSettings(_env_file=None)
    monkeypatch.setenv("ORDERS_DATABASE__HOST", "db.internal")
    monkeypatch.setenv("ORDERS_CONSUMER__BATCH_SIZE", "5")
    monkeypatch.setenv("ORDERS_AUTH__LEEWAY_SECONDS", "1")
    monkeypatch.setenv("ORDERS_EVENTS__MAX_BYTES", "4096")
    settings = OrdersSettings(_env_file=None)
    assert (settings.database.host, settings.consumer.batch_size) == ("db.internal", 5)
    assert settings.database.name == defaults.database.name
    assert settings.consumer.group == defaults.consumer.group
    assert settings.auth.audience == defaults.auth.audience
    assert settings.events == defaults.events.model_copy(update={"max_bytes": 4096})


@pytest.mark.parametrize("secret", ["x" * 31, "é" * 15])
def test_an_hs256_secret_under_32_bytes_is_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("ORDERS_AUTH__HS256_SECRET", secret)
    with pytest.raises(ValidationError, match=r"auth.hs256_secret: at least 32 bytes"):
        OrdersSettings(_env_file=None)


@pytest.mark.parametrize("secret", ["x" * 32, "é" * 16])  # 32 bytes in UTF-8, as it signs
def test_an_hs256_secret_of_32_bytes_is_accepted(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("ORDERS_AUTH__HS256_SECRET", secret)
    settings = OrdersSettings(_env_file=None)
    assert settings.auth.hs256_secret.get_secret_value() == secret
