"""A test-owned RabbitMQ node on its own ports (for TLS and other listener-level tests).

The shared test broker (``tests/support/rabbitmq.py``) cannot be reconfigured by a test; this
module starts a second node with its own name, ports, data and config, and stops it afterwards.

Rules and facts (Debian/Ubuntu packaging of RabbitMQ 3.10):
- the node runs as the ``rabbitmq`` user (``runuser``), so everything it reads or writes lives
  in a directory owned by that user; we must be root (or ``rabbitmq``) to start it;
- its environment comes from a ``rabbitmq-env.conf`` of its own (``RABBITMQ_CONF_ENV_FILE``) and
  the ``RABBITMQ_*`` variables: ``NODENAME``, ``NODE_PORT``, ``DIST_PORT``, ``MNESIA_BASE``,
  ``LOG_BASE``, ``CONFIG_FILE``, ``ENABLED_PLUGINS_FILE``;
- ``rabbitmqctl -n NODE`` reaches it because both run with ``HOME=/var/lib/rabbitmq`` and so
  share that Erlang cookie;
- the node is stopped with ``rabbitmqctl stop`` and, failing that, its process group is killed
  (only that group: it was started in a new session).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.launcher import free_port

__all__ = ["RabbitNode", "as_rabbitmq", "free_port", "node_env", "rabbit_node"]

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
RABBITMQ_HOME = "/var/lib/rabbitmq"
STARTUP_SECONDS = 90


class NodeError(RuntimeError):
    """The test node could not be started or administered (with its log tail)."""


@dataclass
class RabbitNode:
    """A running test node: its name, ports and directory."""

    name: str
    base: Path
    amqp_port: int
    dist_port: int
    extra_ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n NODE ARGS`` as the rabbitmq user; returns stdout."""
        result = subprocess.run(
            as_rabbitmq([RABBITMQCTL, "-n", self.name, *args]), env=self._env(),
            capture_output=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"rabbitmqctl {args[0]} failed: {result.stderr.decode()[-2000:]}")
        return result.stdout.decode()

    def log_tail(self, limit: int = 4000) -> str:
        logs = sorted((self.base / "log").glob("*.log"))
        return "".join(p.read_text(errors="replace")[-limit:] for p in logs)

    def _env(self) -> dict[str, str]:
        return node_env(self.name, self.base, self.amqp_port, self.dist_port)


def node_env(name: str, base: Path, amqp_port: int, dist_port: int) -> dict[str, str]:
    """The environment that makes ``rabbitmq-server`` / ``rabbitmqctl`` this test node."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
    env.update({
        "HOME": RABBITMQ_HOME,
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
    })  # fmt: skip
    return env


def as_rabbitmq(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the ``rabbitmq`` user (Debian's packaging owns the node as that user)."""
    if os.geteuid() == pwd.getpwnam("rabbitmq").pw_uid:
        return list(argv)
    return ["runuser", "-u", "rabbitmq", "--", *argv]


def _prepare(base: Path, config: str, plugins: Sequence[str], node: RabbitNode) -> None:
    for sub in ("mnesia", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "rabbitmq.conf").write_text(config, encoding="utf-8")
    (base / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n", encoding="utf-8")
    env_conf = "\n".join(f"{k.removeprefix('RABBITMQ_')}={v}" for k, v in node._env().items()
                         if k.startswith("RABBITMQ_") and k != "RABBITMQ_CONF_ENV_FILE")
    (base / "rabbitmq-env.conf").write_text(env_conf + "\n", encoding="utf-8")
    user = pwd.getpwnam("rabbitmq")
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


@contextlib.contextmanager
def rabbit_node(
    base: Path, *, config: str, plugins: Sequence[str] = (),
    extra_ports: Mapping[str, int] | None = None,
) -> Iterator[RabbitNode]:
    """Start a node configured by ``config`` (rabbitmq.conf text) in ``base``; stop it after.

    ``base`` must be a fresh directory the rabbitmq user can reach (its parents searchable).
    Raises :class:`NodeError` (with the node's log) if it does not come up.
    """
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "rabbitmq":
        raise NodeError("a test-owned RabbitMQ node must be started as root or rabbitmq")
    if shutil.which("runuser") is None or not Path(RABBITMQ_SERVER).exists():
        raise NodeError("RabbitMQ (Debian packaging) or runuser is not installed")
    node = RabbitNode(name=f"isa-test-{uuid.uuid4().hex[:8]}@localhost", base=base,
                      amqp_port=free_port(), dist_port=free_port(),
                      extra_ports=dict(extra_ports or {}))
    _prepare(base, config, plugins, node)
    node.process = subprocess.Popen(
        as_rabbitmq([RABBITMQ_SERVER]), env=node._env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _await_startup(node)
        yield node
    finally:
        _stop(node)


def _await_startup(node: RabbitNode) -> None:
    """Poll until the node answers (it is not registered with epmd for the first seconds)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    error = ""
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            error = f"rabbitmq-server exited with {node.process.returncode}"
            break
        try:
            node.ctl("await_startup", "--timeout", "30", timeout=40)
        except (NodeError, subprocess.TimeoutExpired) as exc:
            error = str(exc)[-500:]
            time.sleep(1)
        else:
            return
    raise NodeError(f"test node did not start: {error}\n{node.log_tail()}")


def _stop(node: RabbitNode) -> None:
    with contextlib.suppress(NodeError, subprocess.TimeoutExpired):
        node.ctl("stop", timeout=60)
    process = node.process
    if process is None:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
