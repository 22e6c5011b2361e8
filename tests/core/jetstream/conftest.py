"""A NATS harness alone, for what only the JetStream adapter does."""

from collections.abc import AsyncIterator

import pytest

from orders.settings import OrdersSettings
from tests.brokers import NatsHarness
from tests.support import NatsServer


@pytest.fixture
async def nats(database: OrdersSettings, nats_server: NatsServer) -> AsyncIterator[NatsHarness]:
    harness = NatsHarness(database, nats_server.url)
    yield harness
    await harness.close()
