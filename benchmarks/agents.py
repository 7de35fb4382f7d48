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
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.rabbit import cpu_seconds
from broker.devfed import DevFederation
from devtools import federation as tools_federation
from devtools import launcher
from devtools.federation import POLICIES, vhost_of
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
MAX_BODY = 1024 * 1024
BENCH_ISA = "isa-bench"
START_TIMEOUT = 120.0


@dataclass
class AgentProcess(launcher.AgentProcess):
    """One ``isa-agent run`` process (the tools' launcher), its case-system token and its CPU."""

    token: str = field(default="", repr=False)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent process so far (all its threads)."""
        return cpu_seconds(self.pid)


def _rewrite_config(config: Path, prefetch: int | None) -> str:
    """Give the agent a free port and a 1 MiB body limit (for the 256 KB payload rows), and
    ``[broker] prefetch`` when one is given (else the agent's default)."""
    listen = f"127.0.0.1:{launcher.free_port()}"
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
    with tools_federation.provisioned(root, rabbit, vhost=vhost, policies=policies,
                                      agencies=agencies) as fed:  # fmt: skip
        yield fed


def start_agent(
    fed: DevFederation, agency: str, prefetch: int | None = None, profile: Path | None = None
) -> AgentProcess:
    """``isa-agent run``; under cProfile (``benchmarks.profiled``) when ``profile`` names a
    directory, which gets ``<agency>.pstats`` when the agent stops."""
    dev = fed.agency(agency)
    program: tuple[str, ...] = launcher.ISA_AGENT
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        program = (sys.executable, "-m", "benchmarks.profiled", str(profile / f"{agency}.pstats"))
    url, log = _rewrite_config(dev.config, prefetch), dev.config.with_name("agent.log")
    agent = AgentProcess(
        agency, dev.config, url, log, program=program, options=("--log-level", "WARNING"),
        cwd=REPO, token=dev.api_token,
    )  # fmt: skip
    agent.start()
    return agent


def wait_ready(rabbit: Broker, fed: DevFederation, agents: list[AgentProcess]) -> None:
    """Each agent answers /healthz 200 and has a consumer on its inbox queue."""
    vhost = vhost_of(fed)
    launcher.wait_all_healthy(
        agents, START_TIMEOUT + 5 * len(agents),
        ready=lambda agent: _consumers(rabbit, vhost, agent.agency) >= 1,
    )  # fmt: skip


@contextlib.contextmanager
def running(
    rabbit: Broker,
    fed: DevFederation,
    *agencies: str,
    prefetch: int | None = None,
    profile: Path | None = None,
) -> Iterator[list[AgentProcess]]:
    """Start the named agents (in parallel), wait until all are ready, stop them afterwards
    (SIGTERM; SIGKILL after 30 s)."""
    agents: list[AgentProcess] = []
    try:
        for agency in agencies:
            agents.append(start_agent(fed, agency, prefetch, profile))
        wait_ready(rabbit, fed, agents)
        yield agents
    finally:
        for agent in agents:
            with contextlib.suppress(launcher.LaunchError):
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
