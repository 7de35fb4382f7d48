"""A whole local federation as processes, kept in one directory: what ``scripts/demo`` runs.

Steps: :func:`build_federation` (a dev federation with broker users of its own, agents on free
ports, provisioned on its vhost), :func:`start_agents` (one ``isa-agent run`` per agency, through
:mod:`devtools.launcher`), :func:`stop_agents`, :func:`remove_from_broker`.

Rules:
1. The directory's ``demo.json`` records the vhost and the agents' pids the moment each starts;
   it marks the directory as one this module made, and lets a later run (``--stop``) find them.
2. Only processes it started are stopped, by the pids it recorded, and only while their command
   line still names the directory (a recycled pid is left alone).
3. Its broker users are named ``<vhost>.<agency>`` (RabbitMQ users are broker-wide), so it never
   changes the password of another federation's user on the same broker, and removes only those.
4. Every failure is a :class:`RunError` whose message says what and why.
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import signal
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.actor import actor_headers
from broker.config import RabbitSettings, load_broker_config
from broker.devfed import DevAgency, DevFederation
from devtools import federation as tools_federation
from devtools.launcher import AgentProcess, LaunchError, stop_pids, wait_all_healthy
from devtools.management import Broker

__all__ = [
    "DEMO_ACTOR",
    "STATE_FILE",
    "Agent",
    "RunError",
    "broker_settings",
    "build_federation",
    "clear_dir",
    "read_state",
    "remove_from_broker",
    "start_agents",
    "stop_agents",
]


class RunError(Exception):
    """A step of running the local federation failed; the message says which and why."""


STATE_FILE = "demo.json"  # {"vhost": ..., "pids": {agency: pid}}: marks a directory as a demo's
#: The person the demo's case system names in every call (synthetic; agent.actor)
DEMO_ACTOR = actor_headers("SYN-STAFF-0001", "case_worker", "SYNTHETIC demo referral")


def read_state(root: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((root / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state


def _write_state(root: Path, **update: Any) -> None:
    (root / STATE_FILE).write_text(json.dumps(read_state(root) | update, indent=1) + "\n")


def clear_dir(root: Path, force: bool) -> None:
    """Replace a finished demo; a running one or a foreign directory only with ``--force``."""
    if not root.exists() or not any(root.iterdir()):
        return
    state = read_state(root)
    running = [pid for pid in state.get("pids", {}).values() if _alive(pid, root)]
    if running and not force:
        raise RunError(f"{root} holds a federation still running (--keep): stop it with "
                        f"scripts/demo --stop --dir {root}, or pass --force")  # fmt: skip
    if not state and not force:
        raise RunError(f"{root} exists and was not made by the demo; pass --force to replace it")
    if state:
        stop_agents(root)
        remove_from_broker(root)
    shutil.rmtree(root)


_LISTEN = re.compile(r'^listen = "127\.0\.0\.1:(\d+)"$', re.MULTILINE)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listen_on_free_ports(fed: DevFederation) -> None:
    """Keep each agent's dev port (8441...) when free; otherwise move it to a free one."""
    for agency in fed.agencies:
        text = agency.config.read_text()
        match = _LISTEN.search(text)
        if match is None or _port_free(int(match[1])):
            continue
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        agency.config.write_text(_LISTEN.sub(f'listen = "127.0.0.1:{port}"', text))


def build_federation(
    root: Path, policies: Path, vhost: str, step: Callable[[str], None]
) -> DevFederation:
    """A fresh dev federation in ``root``, with users of its own, provisioned on ``vhost``
    (emptied first); ``step`` hears one line when it is built and one when provisioned."""
    fed = tools_federation.create(root, Broker.from_env(), vhost=vhost, policies=policies)
    _write_state(root, vhost=vhost, pids={})  # users are <vhost>.<agency>: the default prefix
    _listen_on_free_ports(fed)
    step(f"dev federation in {root}: {len(fed.agencies)} agencies, {len(fed.isas)} ISAs, "
         f"signed manifest serial {fed.serial}")  # fmt: skip
    _broker(broker_settings(root)).discard_vhost(vhost)
    try:
        report = tools_federation.provision(fed)
    except tools_federation.ProvisionFailed as exc:
        raise RunError(str(exc)) from None
    summary = report.splitlines()[0].split(": ", 1)[-1]
    step(f"provisioned RabbitMQ vhost {vhost} ({summary}: queues, users, permissions)")
    return fed


def broker_settings(root: Path) -> RabbitSettings:
    return load_broker_config(root / "broker.toml").rabbitmq


def _broker(rabbit: RabbitSettings) -> Broker:
    """The broker of ``broker.toml``, administered as its admin user."""
    return Broker(rabbit.amqp_url, rabbit.management_url, rabbit.admin_user,
                  rabbit.admin_password)  # fmt: skip


def remove_from_broker(root: Path) -> None:
    """Delete the demo's vhost and its ``<vhost>.<agency>`` users (never anyone else's)."""
    if not read_state(root) or not (root / "broker.toml").exists():
        return  # not a directory the demo made
    config = load_broker_config(root / "broker.toml")
    rabbit, broker = config.rabbitmq, _broker(config.rabbitmq)
    broker.discard_vhost(rabbit.vhost)
    for agency in config.agencies:
        if rabbit.user_prefix and agency.broker_user.startswith(rabbit.user_prefix):
            broker.discard_user(agency.broker_user)


# --- the agents: start, wait for /healthz, call, stop --------------------------------------

_STARTED: dict[int, Agent] = {}  # the agents this process started, by pid


@dataclass
class Agent(AgentProcess):
    """One ``isa-agent run`` process and the case system's view of its API."""

    token: str = field(default="", repr=False)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One API call with the agent's token (and ``headers``, e.g. the acting person's);
        (HTTP status, parsed JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in DEMO_ACTOR.items():  # the person the case system names (X-Actor-*)
            request.add_header(name, value)
        request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise RunError(f"agent {self.agency} at {self.url}: {exc} (log: {self.log})") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _alive(pid: int, root: Path) -> bool:
    """Is ``pid`` still one of this federation's agents (not a zombie, not a recycled pid)?"""
    started = _STARTED.get(pid)
    if started is not None:
        return started.running
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone (or no /proc: then only the agents of this very run are known)
    zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and b"isa-agent" in cmdline and str(root).encode() in cmdline


def _term_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the driver dies, even by SIGKILL (Linux)."""
    _unblock_signals()
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _unblock_signals() -> None:
    """In the child, before exec: the driver holds SIGINT and SIGTERM while it spawns (see
    ``start_agents``), and a child inherits that mask; the agent must receive them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _agent(agency: DevAgency, root: Path, keep: bool) -> Agent:
    port = _LISTEN.search(agency.config.read_text())
    url = f"http://127.0.0.1:{port[1]}" if port else agency.api_url
    return Agent(
        agency.id, agency.config.resolve(), url, root / "logs" / f"{agency.id}.log",
        new_session=True,  # Ctrl-C reaches the driver, which stops them in order
        preexec=_unblock_signals if keep else _term_with_parent, token=agency.api_token,
    )  # fmt: skip


def start_agents(fed: DevFederation, root: Path, timeout: float, keep: bool) -> dict[str, Agent]:
    """One process per agency, pids recorded at once; wait until every /healthz is ok.

    Without ``keep`` each agent is SIGTERMed by the kernel if this process dies."""
    (root / "logs").mkdir(exist_ok=True)
    agents, pids = {}, {}
    for agency in fed.agencies:
        agent = agents[agency.id] = _agent(agency, root, keep)
        # Ctrl-C or SIGTERM between the spawn and the record would leave an agent nobody stops
        # (the clean-up stops the recorded ones): hold both signals until it is recorded.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            agent.start()
            pids[agency.id] = agent.pid
            _STARTED[agent.pid] = agent
            _write_state(root, pids=pids)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    try:
        wait_all_healthy(list(agents.values()), timeout)
    except LaunchError as exc:
        raise RunError(f"{exc} (logs in {root / 'logs'})") from None
    return agents


def stop_agents(root: Path, grace: float = 15.0) -> int:
    """SIGTERM every recorded agent that is still ours, wait for it to drain; returns how many."""
    pids = list(read_state(root).get("pids", {}).values())
    stopped, stubborn = stop_pids(pids, lambda pid: _alive(pid, root), grace)
    for pid in pids:
        started = _STARTED.pop(pid, None)
        if started is not None and started.process is not None:
            started.process.wait()
    _write_state(root, pids={})
    if stubborn:
        raise RunError(f"agents {stubborn} ignored SIGTERM for {grace:.0f}s and were killed")
    return stopped
