"""Fixtures shared by every test package."""

from tests.support.federation import live_federation
from tests.support.rabbitmq import rabbit_server, rabbit_vhost

__all__ = ["live_federation", "rabbit_server", "rabbit_vhost"]
