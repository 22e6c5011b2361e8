"""The real server process, started as the README and the image start it."""

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from orders.settings import OrdersSettings
from tests.support import free_port, wait_until_ready


@pytest.fixture
def server(database: OrdersSettings) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "ORDERS_ENVIRONMENT": "test",
        "ORDERS_DATABASE__NAME": database.database.name,
        "ORDERS_SERVER__PORT": str(port),
        "ORDERS_REDIS__URL": database.redis.url.get_secret_value(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "orders", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
