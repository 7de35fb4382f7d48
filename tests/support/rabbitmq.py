"""A real RabbitMQ for the tests: one fresh, throw-away vhost per test.

The broker is the one at ``AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``) with its
management API at ``RABBITMQ_MANAGEMENT_URL`` (default ``http://127.0.0.1:15672``);
``scripts/ensure-rabbitmq`` installs and starts it on a fresh machine. Never a mock.

``RabbitServer`` is the tools' one management client, :class:`devtools.management.Broker`
(which is the product's ``broker.rabbitmq.ManagementClient``, called synchronously): its errors
are ``BrokerApiError`` with the HTTP ``status`` (None: unreachable).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.management import Broker, BrokerApiError

__all__ = ["BrokerApiError", "RabbitServer", "RabbitVhost", "rabbit_server", "rabbit_vhost"]

RabbitServer = Broker  # the tests' name for the broker under test


@dataclass(frozen=True)
class RabbitVhost:
    server: RabbitServer
    name: str

    @property
    def amqp_url(self) -> str:
        return self.server.amqp_url_for(self.name)


@pytest.fixture(scope="session")
def rabbit_server() -> RabbitServer:
    """The real RabbitMQ under test; fails (never skips) when it is not reachable."""
    server = Broker.from_env()
    try:
        server.version()
    except BrokerApiError as exc:
        pytest.fail(
            f"RabbitMQ management API not reachable at {server.management_url}: {exc}. "
            "Run scripts/ensure-rabbitmq (scripts/test does) or set AMQP_URL."
        )
    return server


@pytest.fixture
def rabbit_vhost(rabbit_server: RabbitServer) -> Iterator[RabbitVhost]:
    """A fresh vhost with full permissions for the admin user; deleted afterwards."""
    with rabbit_server.throwaway_vhost("test") as name:
        yield RabbitVhost(rabbit_server, name)
