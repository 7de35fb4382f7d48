"""Fixtures shared by every test package."""

from tests.support.rabbitmq import rabbit_server, rabbit_vhost

__all__ = ["rabbit_server", "rabbit_vhost"]
