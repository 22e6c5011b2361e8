"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis).

Every operation gets generated requests, sent with a token to the service running as it ships
(`orders serve`); no answer may be a 5xx, carry an undocumented status, or break its schema.
"""

import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
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
from tests.conftest import empty
from tests.support import bearer, free_port, service_env

EXAMPLES_PER_OPERATION = 150
MINIMUM_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# One worker runs every operation's fuzzing (`--dist loadgroup`): the requests sent are counted
# in the process that sent them.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fuzz")]


def ready(base_url: str) -> bool:
    try:
        # A generous timeout: on a loaded machine an answer can take seconds, and a timeout here
        # would look like a server that never got ready.
        return httpx.get(f"{base_url}/health/ready", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
async def fuzzed(migrated: OrdersSettings) -> AsyncIterator[OrdersSettings]:
    """The migrated database, emptied when the module ends: the orders and events the fuzzing
    wrote would otherwise be published by the next test's publisher on this worker."""
    yield migrated
    await empty(migrated)


@pytest.fixture(scope="module")
def server(fuzzed: OrdersSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = service_env(
        fuzzed,
        ORDERS_SERVER__PORT=str(port),
        ORDERS_RATE_LIMIT__ENABLED="false",  # thousands of requests in a minute
        ORDERS_LOGGING__LEVEL="WARNING",
    )
    # A file, not a pipe: thousands of requests' warnings would fill a pipe nobody reads.
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "orders", "serve"], env=env, stdout=output, stderr=output
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        # A bound for a loaded machine (a server here once needed over a minute to answer under
        # load), not a speed goal.
        deadline = time.monotonic() + 180
        while not ready(base_url):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no /health/ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def sent(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """Requests sent per operation. After the module's last fuzzing test, whichever it is, they
    must cover every operation and add up to MINIMUM_REQUESTS: a schema that generates nothing
    for an operation fails here instead of passing unseen."""
    counter: Counter[str] = Counter()
    yield counter
    fuzzing = [item for item in request.session.items if item.path == request.path]
    operations = {
        result.ok().label for result in schema.get_all_operations() if isinstance(result, Ok)
    }
    if len(fuzzing) < len(operations) or request.session.testsfailed:
        return  # `-k` chose some operations, or a failure cut the run short: nothing to add up
    assert set(counter) == operations, counter
    assert sum(counter.values()) >= MINIMUM_REQUESTS, counter


# The document only: building the app opens no connection.
schema = schemathesis.openapi.from_dict(
    create_app(OrdersSettings(environment=Environment.TEST)).openapi()
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # Generation slows with the machine's load; speed is measured in the benchmarks.
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
def test_no_5xx_and_every_answer_as_documented(
    case: schemathesis.Case[Any], server: str, migrated: OrdersSettings, sent: Counter[str]
) -> None:
    sent[case.operation.label] += 1
    case.call_and_validate(base_url=server, headers=bearer(migrated), checks=CHECKS)
