"""Every error, expected or not, leaves as RFC 9457 problem+json without internals."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from core.errors import PermissionDeniedError, ServiceUnavailableError
from tests.support import serve_in_process


async def explode() -> None:
    msg = "secret connection string postgresql://admin:hunter2@db"  # pragma: allowlist secret
    raise RuntimeError(msg)


async def forbid() -> None:
    raise PermissionDeniedError("orders of another tenant")


async def unavailable() -> None:
    raise ServiceUnavailableError("try later", headers={"Retry-After": "30"})


@pytest.fixture
async def failing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app.add_api_route("/explode", explode)
    app.add_api_route("/forbid", forbid)
    app.add_api_route("/unavailable", unavailable)
    async with serve_in_process(app) as client:
        yield client


async def test_unexpected_exception_is_a_bare_500_problem_and_is_logged(
    failing_client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await failing_client.get("/explode", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-500"
    assert response.json() == {
        "type": "/problems/internal-server-error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred",
        "instance": "/explode",
        "request_id": "req-500",
    }
    assert "hunter2" not in response.text
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failure = next(r for r in records if r["event"] == "request.failed")
    assert failure["request_id"] == "req-500"
    assert failure["level"] == "error"
    assert "RuntimeError" in json.dumps(failure["exception"])


async def test_domain_errors_carry_their_status_and_headers(
    failing_client: httpx.AsyncClient,
) -> None:
    forbidden = await failing_client.get("/forbid")
    assert (forbidden.status_code, forbidden.json()["type"]) == (403, "/problems/permission-denied")
    unavailable = await failing_client.get("/unavailable")
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "30"
    assert unavailable.headers["content-type"] == "application/problem+json"
