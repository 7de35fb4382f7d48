"""Issue 13 point 2: after a real delivery, nothing under either agent's data or key directory
is readable by another local user: every directory is 0700 and every file 0600, the SQLite
``-wal`` / ``-shm`` side files of the store and the audit log included."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import aiohttp
import pytest

from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.processes import (
    ProcessAgent,
    isolated_federation_fixture,  # noqa: F401 - the isolated_federation fixture
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SENDER, RECIPIENT = "police-scotland", "assist"


def private_roots(agent: ProcessAgent) -> list[Path]:
    """The agent's data directory and its key directories."""
    keys = agent.settings.keys
    return sorted({agent.settings.data_dir, keys.signing_key.parent, keys.encryption_dir.parent,
                   keys.encryption_dir})  # fmt: skip


def modes_under(roots: list[Path]) -> dict[str, str]:
    """``{path: octal mode}`` of each root and of everything beneath it (symlinks not followed)."""
    found: dict[str, str] = {}
    for root in roots:
        for path in [root, *root.rglob("*")]:
            found[str(path)] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def loose(modes: dict[str, str]) -> dict[str, str]:
    """The entries that are not 0700 directories or 0600 files."""
    return {p: m for p, m in modes.items()
            if m != (oct(0o700) if Path(p).is_dir() else oct(0o600))}  # fmt: skip


async def test_sqlite_side_files_and_every_agent_file_are_private_after_a_delivery(
    isolated_federation: DevFederation,
) -> None:
    """Every file and directory under both agents' data and key dirs is 0600/0700, WAL included."""
    payload = generate_referral("police_concern", random.Random(5), risk_level="high")
    body = {"to": RECIPIENT, "isa": "isa-police-assist-advocacy",
            "purpose": "advocacy_after_charge", "type": "police_concern", "payload": payload}
    async with aiohttp.ClientSession() as session:
        agents = [ProcessAgent.of(isolated_federation, a, session) for a in (SENDER, RECIPIENT)]
        try:
            for agent in agents:
                await agent.start()
            status, accepted = await agents[0].post("/v1/messages", body)
            assert status == 202, accepted
            await agents[0].wait_status(accepted["id"], {"delivered"})
            running = modes_under([r for a in agents for r in private_roots(a)])
        finally:
            for agent in agents:
                await agent.shutdown()
    stopped = modes_under([r for a in agents for r in private_roots(a)])
    side_files = [p for p in running if p.endswith(("-wal", "-shm"))]
    assert len(side_files) >= 8, side_files  # store and audit log of both agents, while running
    assert (loose(running), loose(stopped)) == ({}, {})
