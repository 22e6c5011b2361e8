"""The real server process, started as the README and the image start it."""

import subprocess
from collections.abc import Iterator

import pytest

from orders.settings import OrdersSettings
from tests.support import free_port, start_command, wait_until_ready


@pytest.fixture
def server(database: OrdersSettings) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = start_command(database, "serve", ORDERS_SERVER__PORT=str(port))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
