"""A real RabbitMQ for the tests: one fresh, throw-away vhost per test.

The broker is the one at ``AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``) with its
management API at ``RABBITMQ_MANAGEMENT_URL`` (default ``http://127.0.0.1:15672``);
``scripts/ensure-rabbitmq`` installs and starts it on a fresh machine. Never a mock.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MANAGEMENT = "http://127.0.0.1:15672"


@dataclass(frozen=True)
class RabbitServer:
    """Where the test broker is and how to administer it (as its admin user)."""

    amqp_url: str
    management_url: str
    admin_user: str
    admin_password: str

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.amqp_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.amqp_url).port or 5672

    def amqp_url_for(self, vhost: str, user: str | None = None, password: str | None = None) -> str:
        user = user or self.admin_user
        password = password if password is not None else self.admin_password
        return (
            f"amqp://{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
            f"@{self.host}:{self.port}/{urllib.parse.quote(vhost, safe='')}"
        )

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the management API synchronously; returns parsed JSON or None."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.management_url.rstrip("/") + "/api/" + path.lstrip("/"), data=data, method=method
        )
        token = base64.b64encode(f"{self.admin_user}:{self.admin_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


@dataclass(frozen=True)
class RabbitVhost:
    server: RabbitServer
    name: str

    @property
    def amqp_url(self) -> str:
        return self.server.amqp_url_for(self.name)


def _server_from_env() -> RabbitServer:
    amqp = os.environ.get("AMQP_URL", DEFAULT_AMQP)
    parts = urllib.parse.urlsplit(amqp)
    return RabbitServer(
        amqp_url=amqp,
        management_url=os.environ.get("RABBITMQ_MANAGEMENT_URL", DEFAULT_MANAGEMENT),
        admin_user=urllib.parse.unquote(parts.username or "guest"),
        admin_password=urllib.parse.unquote(parts.password or "guest"),
    )


@pytest.fixture(scope="session")
def rabbit_server() -> RabbitServer:
    """The real RabbitMQ under test; fails (never skips) when it is not reachable."""
    server = _server_from_env()
    try:
        server.api("GET", "overview")
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(
            f"RabbitMQ management API not reachable at {server.management_url}: {exc}. "
            "Run scripts/ensure-rabbitmq (scripts/test does) or set AMQP_URL."
        )
    return server


@pytest.fixture
def rabbit_vhost(rabbit_server: RabbitServer) -> Iterator[RabbitVhost]:
    """A fresh vhost with full permissions for the admin user; deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    quoted = urllib.parse.quote(name, safe="")
    rabbit_server.api("PUT", f"vhosts/{quoted}", {})
    rabbit_server.api(
        "PUT",
        f"permissions/{quoted}/{urllib.parse.quote(rabbit_server.admin_user, safe='')}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    try:
        yield RabbitVhost(rabbit_server, name)
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            rabbit_server.api("DELETE", f"vhosts/{quoted}")
