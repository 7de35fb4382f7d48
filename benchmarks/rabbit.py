"""The RabbitMQ the benchmarks run against, and throw-away vhosts on it.

Rules:
1. The broker is named by ``--amqp-url`` / ``--management-url`` (defaults: the same
   environment variables and defaults as ``tests/support/rabbitmq.py``); its admin user
   creates one vhost per measurement and deletes it afterwards, whatever happened.
2. Only the management HTTP API is used here (synchronous urllib): no AMQP, no agent code.
3. CPU accounting reads ``/proc/<pid>/stat`` (Linux).
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
from pathlib import Path
from typing import Any

__all__ = [
    "Rabbit",
    "broker_cpu_seconds",
    "cpu_seconds",
    "rabbit_from_env",
    "throwaway_vhost",
]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_MANAGEMENT = "http://127.0.0.1:15672"


@dataclass(frozen=True)
class Rabbit:
    """Where the broker is and its admin credentials."""

    amqp_url: str
    management_url: str

    @property
    def _parts(self) -> urllib.parse.SplitResult:
        return urllib.parse.urlsplit(self.amqp_url)

    @property
    def admin_user(self) -> str:
        return urllib.parse.unquote(self._parts.username or "guest")

    @property
    def admin_password(self) -> str:
        return urllib.parse.unquote(self._parts.password or "guest")

    @property
    def base_amqp(self) -> str:
        """``amqp://host:port/`` without credentials (agents add their own)."""
        return f"amqp://{self._parts.hostname or '127.0.0.1'}:{self._parts.port or 5672}/"

    def url_for(self, vhost: str) -> str:
        """An admin AMQP URL for ``vhost``."""
        user = urllib.parse.quote(self.admin_user, safe="")
        password = urllib.parse.quote(self.admin_password, safe="")
        host = f"{self._parts.hostname or '127.0.0.1'}:{self._parts.port or 5672}"
        return f"amqp://{user}:{password}@{host}/{urllib.parse.quote(vhost, safe='')}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the management API; returns parsed JSON or None."""
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

    def version(self) -> str:
        return str(self.api("GET", "overview").get("rabbitmq_version", "?"))

    def queue(self, vhost: str, queue: str) -> dict[str, Any]:
        quoted = urllib.parse.quote(vhost, safe="")
        found: dict[str, Any] = self.api("GET", f"queues/{quoted}/{queue}")
        return found

    def delete_vhost(self, vhost: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.api("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")

    def delete_user(self, user: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.api("DELETE", f"users/{urllib.parse.quote(user, safe='')}")


def rabbit_from_env(amqp_url: str | None, management_url: str | None) -> Rabbit:
    return Rabbit(
        amqp_url or os.environ.get("AMQP_URL", DEFAULT_AMQP),
        management_url or os.environ.get("RABBITMQ_MANAGEMENT_URL", DEFAULT_MANAGEMENT),
    )


@contextlib.contextmanager
def throwaway_vhost(rabbit: Rabbit, prefix: str) -> Iterator[str]:
    """A fresh vhost the admin user may do anything in; deleted on the way out."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    quoted = urllib.parse.quote(name, safe="")
    rabbit.api("PUT", f"vhosts/{quoted}", {})
    user = urllib.parse.quote(rabbit.admin_user, safe="")
    rabbit.api("PUT", f"permissions/{quoted}/{user}", {"configure": ".*", "write": ".*",
                                                        "read": ".*"})  # fmt: skip
    try:
        yield name
    finally:
        rabbit.delete_vhost(name)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def broker_pid(port: int) -> int | None:
    """The local ``beam.smp`` listening on ``port`` (the AMQP port), if any."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if (
                proc.name.isdigit()
                and (proc / "comm").read_text().strip() == "beam.smp"
                and any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir())
            ):
                return int(proc.name)
    return None


def broker_cpu_seconds(port: int = 5672) -> float:
    """CPU seconds so far of the local RabbitMQ node serving ``port``; 0.0 if it is not local.

    It includes whatever else the broker is doing for other users of it at the same time."""
    pid = broker_pid(port)
    with contextlib.suppress(OSError):
        return cpu_seconds(pid) if pid is not None else 0.0
    return 0.0
