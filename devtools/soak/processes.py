"""The soak's federation as processes under the fake clock: ``isa-broker serve`` and the agents.

Rules:
1. The federation is a dev federation (:mod:`devtools.federation`: exactly what
   ``isa-broker dev-federation`` and ``provision`` make) on a vhost and broker users of its own,
   built at the real time with the soak's ISA copies (:mod:`devtools.soak.isas`).
2. Each agency's ``agent.toml`` is then set up as a deployed agency's would be (README, "Deploy
   an agent"): the manifest comes from the federation's ``isa-broker serve`` (``[trust]
   manifest_url``), so keys are announced and certificate renewals requested with no hand-off.
   Only documented settings change, and only the periods counted in REAL seconds are made short
   (``manifest_poll_seconds``, ``[limits] housekeeping_seconds``): a simulated day lasts a second
   or two, and a poll every 60 real seconds would be one every few simulated weeks.
3. ``isa-broker serve`` runs as installed (``--resign-before 72``, the default) with its re-sign
   check every real second for the same reason, without ``--issue-renewals``: renewals are
   issued by the documented scheduled job.
4. Every process runs under the soak's clock (:meth:`SteppedClock.environ`) and gets SIGTERM if
   the soak's own process dies (Linux), so a killed soak leaves nothing running. Only processes
   started here are ever stopped, by their handles.
5. Failures are :class:`SoakSetupError` with the log tail that explains them.
"""

from __future__ import annotations

import ctypes
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from broker.devfed import DevFederation
from devtools import federation as tools_federation
from devtools.launcher import LaunchError, free_port
from devtools.localfed import Agent
from devtools.management import Broker
from devtools.soak.clock import SteppedClock

__all__ = ["ISA_BROKER", "ManifestServer", "SoakSetupError", "build", "configure_agent",
           "start_agents", "stop_agents"]  # fmt: skip

ISA_BROKER = str(Path(sys.executable).with_name("isa-broker"))


class SoakSetupError(RuntimeError):
    """The soak's federation or one of its processes could not be set up (rule 5)."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the soak dies, even by SIGKILL (rule 4)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def build(root: Path, broker: Broker, *, isas: Path, agencies: list[str],
          built: datetime) -> DevFederation:  # fmt: skip
    """Rule 1: a provisioned dev federation in ``root / "federation"`` built at ``built``."""
    vhost = f"soak-{uuid.uuid4().hex[:10]}"
    fed = tools_federation.create(
        root / "federation", broker, vhost=vhost, policies=isas, agencies=agencies,
        user_prefix=f"{vhost}.", now=built,
    )  # fmt: skip
    try:
        tools_federation.provision(fed)
    except tools_federation.ProvisionFailed as exc:
        tools_federation.remove(fed, broker)
        raise SoakSetupError(str(exc)) from None
    return fed


_MANIFEST_FILE = re.compile(r'^manifest_file = ".*"$', re.MULTILINE)
_LISTEN = re.compile(r'^listen = ".*"$', re.MULTILINE)


def configure_agent(config: Path, *, manifest_url: str, port: int, poll_seconds: float,
                    housekeeping_seconds: float) -> None:  # fmt: skip
    """Rule 2: the agency's ``agent.toml`` as deployed against ``isa-broker serve``."""
    text = config.read_text()
    trust = f'manifest_url = "{manifest_url}"\nmanifest_poll_seconds = {poll_seconds}'
    text, found = _MANIFEST_FILE.subn(trust, text)
    text, listens = _LISTEN.subn(f'listen = "127.0.0.1:{port}"', text)
    if (found, listens) != (1, 1):
        raise SoakSetupError(f"{config}: not a dev federation's agent.toml")
    text += f"\n[limits]\nhousekeeping_seconds = {housekeeping_seconds}\n"
    config.write_text(text)
    config.chmod(0o600)


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


@dataclass
class ManifestServer:
    """``isa-broker serve`` for the soak's federation (rule 3)."""

    federation: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, clock: SteppedClock, within: float = 30.0) -> None:
        argv = [ISA_BROKER, "serve", "--federation", str(self.federation),
                "--listen", f"127.0.0.1:{self.port}", "--resign-before", "72",
                "--resign-check-seconds", "1"]  # fmt: skip
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - our own program, no shell
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=clock.environ(), preexec_fn=_die_with_parent,
            )  # fmt: skip
        deadline = time.monotonic() + within
        while self.healthz()[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise SoakSetupError(f"isa-broker serve did not come up:\n{tail}")
            time.sleep(0.2)

    def healthz(self) -> tuple[int, Any]:
        return _get_json(self.url + "/healthz")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_agents(fed: DevFederation, root: Path, clock: SteppedClock, *, manifest_url: str,
                 poll_seconds: float, housekeeping_seconds: float,
                 within: float = 90.0) -> dict[str, Agent]:  # fmt: skip
    """One ``isa-agent run`` per agency under the clock (rules 2, 4), each ``ready``."""
    (root / "logs").mkdir(exist_ok=True)
    agents = {}
    for agency in fed.agencies:
        port = free_port()
        configure_agent(
            agency.config, manifest_url=manifest_url, port=port, poll_seconds=poll_seconds,
            housekeeping_seconds=housekeeping_seconds,
        )  # fmt: skip
        agent = Agent(agency.id, agency.config, f"http://127.0.0.1:{port}",
                      root / "logs" / f"{agency.id}.log", env=clock.environ(),
                      preexec=_die_with_parent, token=agency.api_token)  # fmt: skip
        agent.start()
        agents[agency.id] = agent
    try:
        wait_ready(list(agents.values()), within)
    except LaunchError:
        stop_agents(agents)
        raise
    return agents


def readiness(agent: Agent) -> str:
    """``ready`` | ``degraded`` | ``not_ready`` from ``GET /readyz`` (``down`` if no answer)."""
    if not agent.healthy() and not agent.running:
        return "down"
    status, body = _get_json(agent.url + "/readyz")
    return str(body.get("status")) if status in (200, 503) and isinstance(body, dict) else "down"


def wait_ready(agents: list[Agent], within: float) -> None:
    """Until every agent's ``/readyz`` says ``ready`` (keys announced, every recipient
    reachable); :class:`LaunchError` naming those still waiting, with a log tail."""
    deadline, waiting = time.monotonic() + within, list(agents)
    while waiting:
        for agent in waiting:
            if not agent.running:
                raise LaunchError(f"agent {agent.agency} exited:\n{agent.tail()}")
        waiting = [a for a in waiting if readiness(a) != "ready"]
        if waiting and time.monotonic() > deadline:
            names = ", ".join(f"{a.agency} ({readiness(a)})" for a in waiting)
            raise LaunchError(f"not ready within {within:.0f}s: {names}\n{waiting[0].tail()}")
        time.sleep(0.2)


def stop_agents(agents: dict[str, Agent]) -> list[str]:
    """SIGTERM each agent (it drains), SIGKILL after 30 s; the ones that exited non-zero."""
    failed = []
    for agent in agents.values():
        try:
            code = agent.stop(signal.SIGTERM, grace=30.0)
        except LaunchError as exc:
            failed.append(str(exc))
            continue
        if code not in (0, None):
            failed.append(f"agent {agent.agency} exited with {code}")
    return failed
