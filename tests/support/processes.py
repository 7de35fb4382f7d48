"""Agents as real operating-system processes, for crash tests, and counting helpers.

``ProcessAgent`` runs ``python -m agent.cli run --config FILE`` (exactly what ``isa-agent run``
does) through the tools' one launcher (:mod:`devtools.launcher`), with a copy of the agency's
``agent.toml`` whose API listens on a free loopback port, waits until ``/healthz`` says ``ok``,
and can stop it with SIGTERM (graceful drain) or SIGKILL (a crash: nothing gets to run). It is
an :class:`~tests.support.federation.AgentHandle`, so the same ``post`` / ``get`` /
``wait_status`` / ``drain_inbox`` work on it. The process's output goes to a log file whose
tail is shown when it fails to start.

``isolated_federation`` is ``live_federation`` whose RabbitMQ users are this vhost's own
(``<vhost>.<agency>``, as ``scripts/demo`` does): RabbitMQ users are broker-wide, so with the
plain agency ids every concurrently running federation test re-provisions the same
``police-scotland`` user with a new password, and an agent that reconnects or restarts (exactly
what these crash tests do) is then refused. The users are deleted with the vhost.

Counting helpers: ``submit_many`` posts referrals with bounded concurrency and returns the ids of
the 202s; ``statuses`` reads the sender's status of many ids; ``duplicates`` names repeated ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broker.devfed import DevFederation
from devtools import federation as tools_federation
from devtools.launcher import AgentProcess, free_port
from tests.support.federation import AgentHandle, agent_settings
from tests.support.rabbitmq import RabbitServer

__all__ = [
    "ProcessAgent",
    "duplicates",
    "isolated_federation_at",
    "isolated_federation_fixture",
    "patched_config",
    "statuses",
    "submit_many",
    "wait_all_status",
]

REPO = Path(__file__).resolve().parents[2]
_LISTEN = re.compile(r'^listen = ".*"$', re.MULTILINE)


def patched_config(original: Path, port: int) -> Path:
    """A copy of ``original`` beside it (relative paths still resolve) listening on ``port``."""
    text, count = _LISTEN.subn(f'listen = "127.0.0.1:{port}"', original.read_text())
    if count != 1:
        raise AssertionError(f"{original}: expected exactly one api listen line")
    path = original.with_name(f"agent.{port}.toml")
    path.write_text(text)
    path.chmod(0o600)
    return path


@dataclass
class ProcessAgent(AgentHandle):
    """One agent in its own process (``isa-agent run``), driven over its HTTP API."""

    launcher: AgentProcess | None = field(default=None, repr=False)

    @classmethod
    def of(cls, fed: DevFederation, agency: str, session: aiohttp.ClientSession) -> ProcessAgent:
        port = free_port()
        settings = agent_settings(fed, agency, listen=f"127.0.0.1:{port}")
        original = fed.agency(agency).config
        launcher = AgentProcess(
            agency, patched_config(original, port), f"http://127.0.0.1:{port}",
            original.with_name(f"agent.{port}.log"), program=(sys.executable, "-m", "agent.cli"),
            options=("--event-loop", "uvloop"), env=_child_env(), cwd=REPO,
        )  # fmt: skip
        return cls(settings, fed.agency(agency).api_token, session, launcher=launcher)

    @property
    def process(self) -> AgentProcess:
        assert self.launcher is not None
        return self.launcher

    async def start(self, within: float = 30) -> None:
        """Start the process and wait until ``/healthz`` reports ``ok``."""
        self.process.start()
        await self.process.await_healthy(within)

    async def shutdown(self) -> None:
        """SIGTERM: the agent drains in-flight work and exits 0."""
        code = await self.process.astop(signal.SIGTERM)
        if code not in (0, None):
            raise AssertionError(f"agent exited with {code} after SIGTERM: {self.tail()}")

    async def kill(self) -> None:
        """SIGKILL: the process ends at once, mid-whatever it was doing."""
        await self.process.astop(signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        return self.process.tail(lines)


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISA_AGENT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def submit_many(
    agent: AgentHandle,
    bodies: Iterable[dict[str, Any]],
    *,
    concurrency: int = 16,
    on_accepted: Callable[[int], None] | None = None,
) -> list[str]:
    """POST each body to /v1/messages; the ids of the 202s, in completion order."""
    accepted: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            status, reply = await agent.post("/v1/messages", body)
        assert status == 202, reply
        accepted.append(reply["id"])
        if on_accepted is not None:
            on_accepted(len(accepted))

    async with asyncio.TaskGroup() as group:
        for body in bodies:
            group.create_task(one(body))
    return accepted


async def statuses(
    agent: AgentHandle, ids: Sequence[str], *, concurrency: int = 16
) -> Counter[str]:
    """How many of ``ids`` the sender reports in each status."""
    return Counter(await _each_status(agent, ids, concurrency))


async def _each_status(agent: AgentHandle, ids: Sequence[str], concurrency: int = 16) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one(message_id: str) -> str:
        async with gate:
            status, body = await agent.get(f"/v1/messages/{message_id}")
        assert status == 200, body
        return str(body["status"])

    return list(await asyncio.gather(*(one(i) for i in ids)))


async def wait_all_status(
    agent: AgentHandle, ids: Sequence[str], wanted: str, within: float = 30
) -> Counter[str]:
    """Poll until every id is in ``wanted`` (or the time is up); returns the final statuses."""
    deadline = asyncio.get_running_loop().time() + within
    final: dict[str, str] = {}
    pending = list(ids)
    while pending and asyncio.get_running_loop().time() < deadline:
        for message_id, status in zip(pending, await _each_status(agent, pending), strict=True):
            if status == wanted:
                final[message_id] = status
        pending = [i for i in pending if i not in final]
        if pending:
            await asyncio.sleep(0.2)
    if pending:
        final.update(zip(pending, await _each_status(agent, pending), strict=True))
    return Counter(final.values())


def duplicates(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)


@contextlib.contextmanager
def isolated_federation_at(
    root: Path, server: RabbitServer, *, now: datetime | None = None
) -> Iterator[DevFederation]:
    """Every agency of the shipped ISAs on a fresh vhost, with broker users of its own, built
    at ``now`` (default: the wall clock)."""
    vhost = f"test-fed-{uuid.uuid4().hex[:10]}"
    with tools_federation.provisioned(
        root, server, vhost=vhost, user_prefix=f"{vhost}.", now=now
    ) as fed:
        yield fed


@pytest.fixture(name="isolated_federation")
def isolated_federation_fixture(
    tmp_path: Path, rabbit_server: RabbitServer
) -> Iterator[DevFederation]:
    """``isolated_federation_at`` for one test."""
    with isolated_federation_at(tmp_path / "federation", rabbit_server) as fed:
        yield fed
