"""Real agents for the benchmarks: a dev federation on its own vhost, agents as subprocesses.

Rules:
1. Each federation is built by ``broker.devfed.create_dev_federation`` on a fresh vhost,
   provisioned by ``broker.commands.provision.provision_command`` (exactly what
   ``isa-broker dev-federation`` + ``isa-broker provision`` do), with agency ids unique to the
   run (``bench_ids``: RabbitMQ users are broker-wide, and reusing the shipped ids would change
   the passwords of anyone else's federation on the same broker); its vhost and users are
   deleted on the way out.
2. Each agent is ``isa-agent run --config agent.toml`` in its own process (SIGTERM to stop),
   listening on a free loopback port (never the dev defaults 8441+, which other people use).
3. ``scaling_policies`` writes the throw-away ISA set (SYNTHETIC) naming any number of agencies:
   the shipped Police Scotland -> ASSIST agreement with every sender in the police role and
   every recipient in the ASSIST role.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.rabbit import cpu_seconds
from broker.commands.provision import provision_command
from broker.devfed import DevFederation, create_dev_federation
from devtools.management import Broker
from federation.topology import inbox_queue

__all__ = [
    "AgentProcess",
    "bench_ids",
    "federation",
    "running",
    "scaling_policies",
]

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
AGENT = Path(sys.executable).with_name("isa-agent")
MAX_BODY = 1024 * 1024
BENCH_ISA = "isa-bench"
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class AgentProcess:
    """One ``isa-agent run`` subprocess and what a case system needs to talk to it."""

    agency: str
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent process so far (all its threads)."""
        return cpu_seconds(self.pid)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _rewrite_config(config: Path, prefetch: int | None) -> str:
    """Give the agent a free port and a 1 MiB body limit (for the 256 KB payload rows), and
    ``[broker] prefetch`` when one is given (else the agent's default)."""
    listen = f"127.0.0.1:{free_port()}"
    text = re.sub(r'listen = "[^"]*"', f'listen = "{listen}"\nmax_body_bytes = {MAX_BODY}',
                  config.read_text())  # fmt: skip
    if prefetch is not None:
        text = re.sub(r"(\[broker\]\n)", rf"\1prefetch = {prefetch}\n", text)
    config.write_text(text)
    return f"http://{listen}"


@contextlib.contextmanager
def federation(
    rabbit: Broker, root: Path, *, agencies: list[str] | None = None, policies: Path = POLICIES
) -> Iterator[DevFederation]:
    """A provisioned dev federation on a fresh vhost; the vhost is deleted afterwards."""
    vhost = f"bench-fed-{uuid.uuid4().hex[:10]}"
    fed = create_dev_federation(
        root, policies=policies, now=datetime.now(UTC), agencies=agencies,
        amqp_url=rabbit.base_amqp, management_url=rabbit.management_url, vhost=vhost,
        admin_user=rabbit.admin_user, admin_password=rabbit.admin_password,
    )  # fmt: skip
    try:
        provision_command(fed.layout.broker_toml, dry_run=False, environ={}, out=io.StringIO())
        yield fed
    finally:
        rabbit.discard_vhost(vhost)
        for agency in fed.agencies:
            rabbit.discard_user(agency.id)


def vhost_of(fed: DevFederation) -> str:
    text = fed.layout.broker_toml.read_text()
    return text.split('vhost = "', 1)[1].split('"', 1)[0]


def start_agent(
    fed: DevFederation, agency: str, prefetch: int | None = None, profile: Path | None = None
) -> AgentProcess:
    """``isa-agent run``; under cProfile (``benchmarks.profiled``) when ``profile`` names a
    directory, which gets ``<agency>.pstats`` when the agent stops."""
    dev = fed.agency(agency)
    url = _rewrite_config(dev.config, prefetch)
    log = dev.config.with_name("agent.log")
    command = [str(AGENT)]
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.profiled", str(profile / f"{agency}.pstats")]
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [*command, "run", "--config", str(dev.config), "--log-level", "WARNING"],
            stdout=sink, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=REPO,
        )  # fmt: skip
    return AgentProcess(agency, url, dev.api_token, process, log)


def wait_ready(rabbit: Broker, fed: DevFederation, agents: list[AgentProcess]) -> None:
    """Each agent answers /healthz 200 and has a consumer on its inbox queue."""
    vhost, deadline = vhost_of(fed), time.monotonic() + START_TIMEOUT + 5 * len(agents)
    pending = list(agents)
    while pending:
        agent = pending[0]
        if agent.process.poll() is not None:
            tail = agent.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"agent {agent.agency} exited during start-up:\n{tail}")
        if agent.healthy() and _consumers(rabbit, vhost, agent.agency) >= 1:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"agent {agent.agency} not ready in time: see {agent.log}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(
    rabbit: Broker,
    fed: DevFederation,
    *agencies: str,
    prefetch: int | None = None,
    profile: Path | None = None,
) -> Iterator[list[AgentProcess]]:
    """Start the named agents (in parallel), wait until all are ready, stop them afterwards."""
    agents: list[AgentProcess] = []
    try:
        for agency in agencies:
            agents.append(start_agent(fed, agency, prefetch, profile))
        wait_ready(rabbit, fed, agents)
        yield agents
    finally:
        for agent in agents:
            agent.stop()


class _NoAliases(yaml.SafeDumper):
    """ISA files may not use YAML aliases: write every repeated value out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def bench_ids(senders: int, recipients: int) -> tuple[list[str], list[str]]:
    """Agency ids unique to this run (RabbitMQ users are broker-wide: never reuse real ones)."""
    run = uuid.uuid4().hex[:6]
    return [f"b{run}-s{i:02d}" for i in range(senders)], [
        f"b{run}-r{i:02d}" for i in range(recipients)
    ]


def scaling_policies(out: Path, senders: list[str], recipients: list[str]) -> Path:
    """A throw-away SYNTHETIC ISA set: ``senders`` may send police concerns to ``recipients``
    (the shipped Police Scotland -> ASSIST agreement, with these agencies in those roles)."""
    doc: dict[str, Any] = yaml.safe_load((POLICIES / "police-to-assist.yaml").read_text())
    police, assist = doc["parties"]
    doc["isa"]["id"] = BENCH_ISA
    doc["isa"]["title"] = "SYNTHETIC: benchmark scaling agreement (throw-away)"
    doc["parties"] = [police | {"id": s, "name": f"SYNTHETIC sender {s}"} for s in senders] + [
        assist | {"id": r, "name": f"SYNTHETIC recipient {r}"} for r in recipients
    ]
    purpose = doc["purposes"][0]
    basis = purpose["lawful_basis"]
    purpose["lawful_basis"] = {s: basis[police["id"]] for s in senders} | {
        r: basis[assist["id"]] for r in recipients
    }
    for flow in doc["flows"]:
        flow["from"], flow["to"] = senders, recipients
    out.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(doc, Dumper=_NoAliases, sort_keys=False)
    (out / "bench-scaling.yaml").write_text(text)
    return out


def _consumers(rabbit: Broker, vhost: str, agency: str) -> int:
    return int(rabbit.queue(vhost, inbox_queue(agency)).get("consumers", 0))
