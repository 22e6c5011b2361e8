"""Log lines: JSON with the service's fields, secrets masked at any depth, one-field tracebacks."""

import json
import logging

import pytest
import structlog

from core.logging import configure_logging
from core.settings import LoggingSettings
from orders.settings import OrdersSettings


def last_line(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = capsys.readouterr().out.strip().splitlines()
    record: dict[str, object] = json.loads(lines[-1])
    return record


def test_secrets_are_masked_in_nested_values(
    settings: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings)
    structlog.get_logger("tests").info(
        "login.attempted",
        user="ada",
        password="hunter2",  # pragma: allowlist secret
        request={"headers": {"Authorization": "Bearer abc", "accept": "json"}, "api_key": "k"},
        attempts=[{"session_token": "t", "ok": False}],
        headers=[("x-api-key", "k2"), ("accept", "json")],
        upstream={"X-API-Key": "k3"},
    )
    record = last_line(capsys)
    assert record["user"] == "ada"
    assert record["password"] == "***"
    assert record["request"] == {
        "headers": {"Authorization": "***", "accept": "json"},
        "api_key": "***",
    }
    assert record["attempts"] == [{"session_token": "***", "ok": False}]
    assert record["headers"] == [["x-api-key", "***"], ["accept", "json"]]
    assert record["upstream"] == {"X-API-Key": "***"}
    assert "hunter2" not in json.dumps(record)


def test_configured_keys_are_masked_too(
    settings: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    logging_settings = LoggingSettings(extra_sensitive_keys=["iban"])
    configure_logging(settings.model_copy(update={"logging": logging_settings}))
    structlog.get_logger("tests").info("refund.sent", customer_iban="DE02...", amount="1.00")
    assert last_line(capsys)["customer_iban"] == "***"


def test_library_records_and_exceptions_are_single_json_lines(
    settings: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings)
    try:
        raise ValueError("broken")  # noqa: TRY301
    except ValueError:
        logging.getLogger("some.library").exception("it failed")
    record = last_line(capsys)
    assert (record["logger"], record["level"], record["event"]) == (
        "some.library",
        "error",
        "it failed",
    )
    assert (record["module"], record["function"]) == (
        "test_logging",
        "test_library_records_and_exceptions_are_single_json_lines",
    )
    assert isinstance(record["line"], int)
    assert record["exception"][0]["exc_type"] == "ValueError"  # type: ignore[index]
    assert (record["service"], record["version"], record["environment"]) == (
        settings.service_name,
        settings.service_version,
        "test",
    )


def test_the_console_format_is_for_people(
    settings: OrdersSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(settings.model_copy(update={"logging": LoggingSettings(format="console")}))
    structlog.get_logger("tests").info("order.placed", order_id="o-1")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "order.placed" in line
    assert "order_id" in line
    assert not line.startswith("{")


def test_sql_statements_are_logged_only_at_debug(settings: OrdersSettings) -> None:
    configure_logging(settings)
    assert not logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)
    configure_logging(settings.model_copy(update={"logging": LoggingSettings(level="DEBUG")}))
    assert logging.getLogger("sqlalchemy.engine").isEnabledFor(logging.INFO)
    configure_logging(settings)
