"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, sent with a token to the service running as it ships
(`orders serve`); no answer may be a 5xx, carry an undocumented status, or break its schema.
"""

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Environment
from orders.main import create_app
from orders.settings import OrdersSettings
from tests.support import bearer, free_port

EXAMPLES_PER_OPERATION = 150
MINIMUM_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
sent: Counter[str] = Counter()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(migrated: OrdersSettings) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ORDERS_ENVIRONMENT": "test",
        "ORDERS_DATABASE__NAME": migrated.database.name,
        "ORDERS_REDIS__URL": migrated.redis.url.get_secret_value(),
        "ORDERS_SERVER__PORT": str(port),
        "ORDERS_RATE_LIMIT__ENABLED": "false",  # thousands of requests in a minute
        "ORDERS_LOGGING__LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "orders", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)


# The document only: building the app opens no connection.
schema = schemathesis.openapi.from_dict(
    create_app(OrdersSettings(environment=Environment.TEST)).openapi()
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_5xx_and_every_answer_as_documented(
    case: schemathesis.Case[Any], server: str, migrated: OrdersSettings
) -> None:
    sent[case.operation.label] += 1
    case.call_and_validate(base_url=server, headers=bearer(migrated), checks=CHECKS)


def test_the_fuzzing_sent_enough_requests() -> None:
    # Runs after the parametrized test above (pytest keeps the file's order).
    operations = {
        result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)
    }
    assert set(sent) == operations, sent
    assert sum(sent.values()) >= MINIMUM_REQUESTS, sent
