"""The RabbitMQ the tools use, and its management API: one client for demo, benchmarks, tests.

Rules:
1. There is one management client in the project: the product's
   :class:`broker.rabbitmq.ManagementClient` (what ``isa-broker provision`` uses). The tools are
   synchronous (scripts, fixtures, setup code), so :class:`Broker` runs each call on a fresh
   client, in a worker thread with an event loop of its own: it works alike from plain code and
   from inside a running event loop (which it blocks for the call, as a synchronous HTTP call
   would), and the client's session is closed before the call returns.
2. Errors are the product's: every failure is one
   :class:`~broker.rabbitmq.BrokerApiError` whose ``status`` is the HTTP status, or None when the
   API could not be reached; no aiohttp or urllib exception escapes, and no credential appears in
   a message.
3. Where the broker is comes from the environment once, at the edge (:meth:`Broker.from_env`):
   ``AMQP_URL`` with the admin credentials in it and ``RABBITMQ_MANAGEMENT_URL``; the defaults
   are the local broker ``scripts/ensure-rabbitmq`` starts.
4. Clean-up (``discard_*``) ignores a refusal (already gone, never made) but not an unreachable
   API: a tool must not report "removed" when it could not even ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from broker.rabbitmq import BrokerApiError, ManagementClient

__all__ = ["DEFAULT_AMQP", "DEFAULT_MANAGEMENT", "Broker", "BrokerApiError"]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MANAGEMENT = "http://127.0.0.1:15672"
TIMEOUT = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class Broker:
    """Where a RabbitMQ is, how to administer it (as its admin user), and its management API."""

    amqp_url: str
    management_url: str
    admin_user: str
    admin_password: str

    @classmethod
    def from_env(cls, amqp_url: str | None = None, management_url: str | None = None) -> Broker:
        """The broker named by the arguments, else by ``AMQP_URL`` / ``RABBITMQ_MANAGEMENT_URL``."""
        amqp = amqp_url or os.environ.get("AMQP_URL", DEFAULT_AMQP)
        parts = urllib.parse.urlsplit(amqp)
        return cls(
            amqp_url=amqp,
            management_url=management_url
            or os.environ.get("RABBITMQ_MANAGEMENT_URL", DEFAULT_MANAGEMENT),
            admin_user=urllib.parse.unquote(parts.username or "guest"),
            admin_password=urllib.parse.unquote(parts.password or "guest"),
        )

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.amqp_url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.amqp_url).port or 5672

    @property
    def base_amqp(self) -> str:
        """``amqp://host:port/`` without credentials (each agent adds its own)."""
        return f"amqp://{self.host}:{self.port}/"

    def amqp_url_for(self, vhost: str, user: str | None = None, password: str | None = None) -> str:
        """An AMQP URL for ``vhost``, as the admin unless another user is named."""
        user = user or self.admin_user
        password = password if password is not None else self.admin_password
        return (
            f"amqp://{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
            f"@{self.host}:{self.port}/{urllib.parse.quote(vhost, safe='')}"
        )

    # -- the management API (rule 1) -----------------------------------------------------

    def run(self, use: Callable[[ManagementClient], Awaitable[T]]) -> T:
        """``use(client)`` on a fresh admin client in a thread of its own; its result."""

        async def once() -> T:
            client = ManagementClient(
                self.management_url, self.admin_user, self.admin_password, timeout=TIMEOUT
            )
            async with client:
                return await use(client)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rabbitmq-api") as worker:
            return worker.submit(asyncio.run, once()).result()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Any call by its path below ``/api/`` (segments percent-encoded, as the API writes
        them); parsed JSON or None. A 404 raises, like any refusal (rule 2)."""
        segments = [urllib.parse.unquote(s) for s in path.strip("/").split("/")]
        return self.run(lambda client: client.request(method, *segments, body=body))

    def version(self) -> str:
        return str(self.run(ManagementClient.overview).get("rabbitmq_version", "?"))

    def vhost_exists(self, vhost: str) -> bool:
        return self.run(lambda client: client.vhost_exists(vhost))

    def queue(self, vhost: str, queue: str) -> dict[str, Any]:
        """The API's whole record of ``queue`` (consumers, messages, leader...)."""
        found: dict[str, Any] = self.run(lambda c: c.request("GET", "queues", vhost, queue))
        return found

    def discard_vhost(self, vhost: str) -> None:
        """Delete ``vhost`` if it can be deleted (rule 4)."""
        with _refusal_ignored():
            self.run(lambda client: client.delete_vhost(vhost))

    def discard_user(self, user: str) -> None:
        """Delete the broker user ``user`` if it can be deleted (rule 4)."""
        with _refusal_ignored():
            self.run(lambda client: client.delete_user(user))

    @contextlib.contextmanager
    def throwaway_vhost(self, prefix: str) -> Iterator[str]:
        """A fresh vhost ``<prefix>-<random>`` the admin may do anything in; deleted after."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.run(lambda client: _open_vhost(client, name, self.admin_user))
        try:
            yield name
        finally:
            self.discard_vhost(name)


async def _open_vhost(client: ManagementClient, vhost: str, user: str) -> None:
    await client.put_vhost(vhost)
    await client.put_permissions(vhost, user, configure=".*", write=".*", read=".*")


@contextlib.contextmanager
def _refusal_ignored() -> Iterator[None]:
    try:
        yield
    except BrokerApiError as exc:
        if exc.status is None:
            raise
