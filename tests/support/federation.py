"""A whole federation for end-to-end tests: dev federation + real RabbitMQ + running agents.

``live_federation`` builds a dev federation from the shipped ``policies/`` on a throw-away vhost,
provisions it through the management API exactly as ``isa-broker provision`` does, and removes
the vhost afterwards. ``AgentHandle`` runs one agent in-process (``agent.runtime.run_agent``) on a
free loopback port and talks to it over HTTP as a case system would.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.actor import actor_headers
from agent.clock import Clock, utcnow
from agent.config import Settings, load_settings
from agent.runtime import run_agent
from broker.devfed import DevFederation
from devtools import federation as tools_federation
from devtools.federation import POLICIES, vhost_of
from devtools.launcher import free_port
from federation.pipeline import leaf_paths
from tests.support.rabbitmq import RabbitServer

__all__ = [
    "POLICIES",
    "SYNTHETIC_ACTOR",
    "AgentHandle",
    "agent_settings",
    "build_federation",
    "free_port",
    "leaf_paths",
    "live_federation",
    "remove_federation",
    "running_agents",
    "vhost_of",
]

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_ACTOR = actor_headers("SYN-STAFF-0001", "case_worker", "SYNTHETIC end-to-end test")


def build_federation(
    root: Path, server: RabbitServer, agencies: list[str] | None = None
) -> DevFederation:
    """The shipped federation (or ``agencies`` of it), provisioned on a fresh vhost."""
    tag = uuid.uuid4().hex[:10]
    return tools_federation.build(root, server, vhost=f"test-fed-{tag}", agencies=agencies,
                                  user_prefix=f"t{tag}-")  # fmt: skip


def remove_federation(fed: DevFederation, server: RabbitServer) -> None:
    """Delete the federation's vhost and its (test-prefixed) broker users."""
    tools_federation.remove(fed, server)


@pytest.fixture
def live_federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    """Every agency of the shipped ISAs, provisioned on a fresh vhost."""
    fed = build_federation(tmp_path / "federation", rabbit_server)
    try:
        yield fed
    finally:
        remove_federation(fed, rabbit_server)


def agent_settings(fed: DevFederation, agency: str, **api: Any) -> Settings:
    settings = load_settings(fed.agency(agency).config, environ={})
    listen = f"127.0.0.1:{free_port()}"
    return settings.model_copy(
        update={"api": settings.api.model_copy(update={"listen": listen, **api})}
    )


@dataclass
class AgentHandle:
    """One in-process agent and an HTTP client acting as its case system."""

    settings: Settings
    token: str
    session: aiohttp.ClientSession
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    clock: Clock = utcnow  # the agent's clock (a test may run one agent days ahead)
    #: the person the case system names in every call (the X-Actor-* headers; synthetic)
    actor: dict[str, str] = field(default_factory=lambda: dict(SYNTHETIC_ACTOR))

    @property
    def url(self) -> str:
        return f"http://{self.settings.api.listen}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **self.actor}

    async def start(self) -> None:
        ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_agent(self.settings, stop=self.stop, ready=ready, clock=self.clock)
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            waiter.cancel()
            self.task.result()  # raises the start-up error
            raise AssertionError("agent stopped during start-up")

    async def shutdown(self) -> None:
        if self.task is not None:
            self.stop.set()
            await self.task
            self.task = None

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.url + path, json=body, headers=self.headers) as resp:
            return resp.status, await _body(resp)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.url + path, headers=self.headers) as resp:
            return resp.status, await _body(resp)

    async def wait_status(self, message_id: str, wanted: set[str], within: float = 20) -> Any:
        """Poll GET /v1/messages/{id} until its status is in ``wanted``."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            status, body = await self.get(f"/v1/messages/{message_id}")
            if status == 200 and body["status"] in wanted:
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"message {message_id} still {body} after {within}s")
            await asyncio.sleep(0.05)

    async def drain_inbox(self, expected: int, within: float = 30) -> list[Any]:
        """Read (and ack) inbox items until ``expected`` arrived or the timeout passes."""
        items: list[Any] = []
        cursor = 0
        deadline = asyncio.get_running_loop().time() + within
        while len(items) < expected and asyncio.get_running_loop().time() < deadline:
            status, page = await self.get(f"/v1/inbox?after={cursor}&limit=500")
            assert status == 200, page
            for item in page["items"]:
                items.append(item)
                ack, _ = await self.post(f"/v1/inbox/{item['id']}/ack", None)
                assert ack == 204
            cursor = page["next_cursor"]
            if not page["items"]:
                await asyncio.sleep(0.05)
        return items


async def _body(resp: aiohttp.ClientResponse) -> Any:
    if resp.status == 204:
        return None
    if "json" in resp.content_type:
        return await resp.json(content_type=None)
    return await resp.text()


@contextlib.asynccontextmanager
async def running_agents(
    fed: DevFederation, *agencies: str
) -> AsyncIterator[dict[str, AgentHandle]]:
    """Start the named agents in-process; stop them all on the way out."""
    async with aiohttp.ClientSession() as session:
        handles = {
            a: AgentHandle(agent_settings(fed, a), fed.agency(a).api_token, session)
            for a in agencies
        }
        try:
            for handle in handles.values():
                await handle.start()
            yield handles
        finally:
            for handle in handles.values():
                await handle.shutdown()
