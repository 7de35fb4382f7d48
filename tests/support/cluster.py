"""Test-owned RabbitMQ nodes that can be stopped, killed and restarted: one node or a cluster.

``rabbit_cluster(size=3)`` starts ``size`` nodes of one cluster on this machine, each with its
own name, AMQP, Erlang distribution and management ports and its own data directory, and removes
them afterwards. ``size=1`` is a single node the test owns (for broker restarts). Nodes can be
stopped (``rabbitmqctl stop``), killed (SIGKILL of the node's process group) and started again
with the same name, ports and data, so durable queues and messages survive as in production.

Rules and facts (Debian/Ubuntu packaging of RabbitMQ 3.10, as in ``rabbit_node.py``):
- every node runs as the ``rabbitmq`` user (``runuser``); its directory is owned by that user
  and lives directly under ``/tmp`` (a pytest ``tmp_path`` is not searchable by other users);
- all nodes and ``rabbitmqctl`` share ``HOME=/var/lib/rabbitmq`` and so one Erlang cookie,
  which is what lets them cluster;
- the first node boots alone; the others find it by classic-config peer discovery on their
  first boot (a node with data of its own rejoins its cluster on a restart);
- only processes this module started are ever signalled, by their own process group.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.rabbit_node import (
    RABBITMQ_SERVER,
    RABBITMQCTL,
    as_rabbitmq,
    free_port,
    node_env,
)
from tests.support.rabbitmq import BrokerApiError, RabbitServer

__all__ = ["ClusterError", "ClusterNode", "RabbitCluster", "rabbit_cluster"]

STARTUP_SECONDS = 120
ADMIN = ("guest", "guest")  # a fresh node's default administrator (loopback only)


class ClusterError(RuntimeError):
    """A test node could not be started or administered (with its log tail)."""


@dataclass
class ClusterNode:
    """One node: its name, ports and directory; start / stop / kill it."""

    name: str
    base: Path
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def server(self) -> RabbitServer:
        """This node as a :class:`RabbitServer` (its AMQP URL and management API, as admin)."""
        return RabbitServer(
            amqp_url=f"amqp://127.0.0.1:{self.amqp_port}/",
            management_url=f"http://127.0.0.1:{self.management_port}",
            admin_user=ADMIN[0],
            admin_password=ADMIN[1],
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def amqp_url(self, vhost: str) -> str:
        """The node's AMQP URL for ``vhost`` without credentials (as agent.toml writes it)."""
        return f"amqp://127.0.0.1:{self.amqp_port}/{urllib.parse.quote(vhost, safe='')}"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n NODE ARGS`` as the rabbitmq user; returns stdout."""
        result = subprocess.run(
            as_rabbitmq([RABBITMQCTL, "-n", self.name, *args]), env=self.env(),
            capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"rabbitmqctl {args[0]} on {self.name}: {result.stderr[-1500:]!r}")
        return result.stdout.decode()

    def env(self) -> dict[str, str]:
        return node_env(self.name, self.base, self.amqp_port, self.dist_port)

    def start(self) -> None:
        """Start the node (with the data it already has) and wait until it answers."""
        if self.running:
            raise ClusterError(f"{self.name} is already running")
        self.process = subprocess.Popen(
            as_rabbitmq([RABBITMQ_SERVER]), env=self.env(), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def await_startup(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        error = ""
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                error = "rabbitmq-server exited"
                break
            try:
                self.ctl("await_startup", "--timeout", "30", timeout=40)
            except (ClusterError, subprocess.TimeoutExpired) as exc:
                error = str(exc)[-500:]
                time.sleep(1)
            else:
                return
        raise ClusterError(f"{self.name} did not start: {error}\n{self.log_tail()}")

    def stop(self) -> None:
        """A clean shutdown (``rabbitmqctl stop``); SIGKILL if it does not end in time."""
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        self._reap(30)

    def kill(self) -> None:
        """SIGKILL the node's process group at once (a crash)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(10)

    def _reap(self, within: float) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log_tail(self, limit: int = 3000) -> str:
        logs = sorted((self.base / "log").glob("*.log"))
        return "".join(p.read_text(errors="replace")[-limit:] for p in logs)


@dataclass
class RabbitCluster:
    """The nodes of one test cluster (``nodes[0]`` booted first)."""

    nodes: list[ClusterNode]

    def running_node(self) -> ClusterNode:
        for node in self.nodes:
            if node.running:
                return node
        raise ClusterError("no node of the cluster is running")

    def node(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The management API of any running node."""
        return self.running_node().server.api(method, path, body)

    def queue_leader(self, vhost: str, queue: str) -> ClusterNode:
        """The node that leads the quorum queue ``queue`` now."""
        q = urllib.parse.quote
        info = self.api("GET", f"queues/{q(vhost, safe='')}/{q(queue, safe='')}")
        return self.node(str(info["leader"]))

    def members(self) -> set[str]:
        """The running members of the cluster, as the first running node sees them."""
        return {n["name"] for n in self.api("GET", "nodes") if n.get("running")}


def _config(node: ClusterNode, seed: ClusterNode) -> str:
    return "\n".join([
        f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}",
        "management.tcp.ip = 127.0.0.1",
        f"management.tcp.port = {node.management_port}",
        "cluster_formation.peer_discovery_backend = classic_config",
        f"cluster_formation.classic_config.nodes.1 = {seed.name}",
        "disk_free_limit.absolute = 50MB",
        "",
    ])  # fmt: skip


def _prepare(node: ClusterNode, seed: ClusterNode) -> None:
    for sub in ("mnesia", "log"):
        (node.base / sub).mkdir(parents=True, exist_ok=True)
    (node.base / "rabbitmq.conf").write_text(_config(node, seed), encoding="utf-8")
    (node.base / "enabled_plugins").write_text("[rabbitmq_management].\n", encoding="utf-8")
    env_conf = "\n".join(
        f"{k.removeprefix('RABBITMQ_')}={v}" for k, v in node.env().items()
        if k.startswith("RABBITMQ_") and k != "RABBITMQ_CONF_ENV_FILE"
    )  # fmt: skip
    (node.base / "rabbitmq-env.conf").write_text(env_conf + "\n", encoding="utf-8")
    user = pwd.getpwnam("rabbitmq")
    for path in [node.base, *node.base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _check_can_run() -> None:
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "rabbitmq":
        raise ClusterError("test-owned RabbitMQ nodes must be started as root or rabbitmq")
    if shutil.which("runuser") is None or not Path(RABBITMQ_SERVER).exists():
        raise ClusterError("RabbitMQ (Debian packaging) or runuser is not installed")


@contextlib.contextmanager
def rabbit_cluster(size: int = 3) -> Iterator[RabbitCluster]:
    """Start ``size`` clustered nodes (in a fresh directory under /tmp); remove them after."""
    _check_can_run()
    root = Path(tempfile.mkdtemp(prefix="isa-cluster-"))
    tag = uuid.uuid4().hex[:6]
    nodes = [ClusterNode(f"isa-c{tag}-{i}@localhost", root / f"n{i}") for i in range(size)]
    try:
        for node in nodes:
            _prepare(node, nodes[0])
        os.chown(root, pwd.getpwnam("rabbitmq").pw_uid, pwd.getpwnam("rabbitmq").pw_gid)
        nodes[0].start()
        nodes[0].await_startup()
        for node in nodes[1:]:
            node.start()
        for node in nodes[1:]:
            node.await_startup()
        cluster = RabbitCluster(nodes)
        _await_members(cluster, {n.name for n in nodes})
        yield cluster
    finally:
        for node in nodes:
            node.kill()  # its data is removed next: no need for a clean shutdown
        shutil.rmtree(root, ignore_errors=True)


def _await_members(cluster: RabbitCluster, names: set[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    seen: set[str] = set()
    while time.monotonic() < deadline:
        with contextlib.suppress(BrokerApiError):
            seen = cluster.members()
            if seen == names:
                return
        time.sleep(0.5)
    raise ClusterError(f"cluster did not form: {sorted(seen)} of {sorted(names)}")
