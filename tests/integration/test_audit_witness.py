"""A real agent anchors its audit log's head at a real ``isa-broker serve`` (review issue 13,
point 6), and ``isa-agent audit verify`` then detects a truncation that deleting the local
checkpoints would otherwise hide."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.cli import main as agent_main
from federation.synth import generate_referral
from tests.integration.test_revocation import (
    LiveFederation,
    build_live_federation,
    remove_live_federation,
)
from tests.support.federation import AgentHandle, agent_settings, free_port
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[LiveFederation]:
    fed = build_live_federation(tmp_path / "federation", rabbit_server)
    try:
        yield fed
    finally:
        remove_live_federation(fed)


@pytest.fixture
def witness(federation: LiveFederation) -> Iterator[str]:
    """``isa-broker serve`` over the federation (the manifest server is the witness)."""
    port = free_port()
    command = [sys.executable, "-m", "broker.cli", "serve", "--federation",
               str(federation.layout.root), "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().startswith("serving manifest serial")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)


def _use_manifest_url(config: Path, url: str) -> None:
    """Point the agent's [trust] at the manifest server, as an operator would."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[trust]\n", f'[trust]\nmanifest_url = "{url}"\n', 1))


def _held(url: str) -> dict[str, Any] | None:
    """The head the witness holds, None on its 404."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        return None


async def _verify(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(agent_main, ["audit", "verify", "--config", str(config)])
    return code, capsys.readouterr().out


async def _run_police(fed: LiveFederation, witness: str) -> str:
    """police-scotland (posting heads every 0.2 s) sends assist a referral; then both stop."""
    payload = generate_referral("police_concern", random.Random(3), risk_level="high")
    referral = {"to": "assist", "isa": "isa-police-assist-advocacy", "payload": payload,
                "purpose": "advocacy_after_charge", "type": "police_concern"}  # fmt: skip
    police_settings = agent_settings(fed.dev, "police-scotland")
    police_settings = police_settings.model_copy(
        update={"audit": police_settings.audit.model_copy(update={"witness_seconds": 0.2})}
    )
    url = f"{witness}/v1/audit-heads/police-scotland"
    async with aiohttp.ClientSession() as session:
        police = AgentHandle(police_settings, fed.dev.agency("police-scotland").api_token, session)
        assist = AgentHandle(
            agent_settings(fed.dev, "assist"), fed.dev.agency("assist").api_token, session
        )
        await assist.start()
        await police.start()
        try:
            status, body = await police.post("/v1/messages", referral)
            assert status == 202, body
            await police.wait_status(body["id"], {"delivered"})
            for _ in range(100):  # the periodic post, while the agent runs
                if _held(url) is not None:
                    break
                await asyncio.sleep(0.1)
            assert _held(url) is not None, "no head posted while running"
        finally:
            await police.shutdown()
            await assist.shutdown()
    return url


class TestAuditWitnessEndToEnd:
    async def test_a_truncation_hidden_by_deleting_checkpoints_is_caught_by_the_witness(
        self, federation: LiveFederation, witness: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The final head reaches the witness; cutting tail and checkpoints then fails verify."""
        config = federation.dev.agency("police-scotland").config
        _use_manifest_url(config, f"{witness}/manifest")
        url = await _run_police(federation, witness)
        code, out = await _verify(config, capsys)
        head = _held(url)
        assert head is not None
        audit = config.parent / "data" / "audit.sqlite"
        with sqlite3.connect(audit) as conn:
            (end,) = conn.execute("SELECT max(seq) FROM entries").fetchone()
        assert (code, head["seq"]) == (0, end), out
        assert f"the witness holds entry {end}" in out
        with sqlite3.connect(audit) as conn:
            conn.execute("DELETE FROM checkpoints")
            conn.execute("DELETE FROM entries WHERE seq > ?", (end - 4,))
        code, out = await _verify(config, capsys)
        assert code == 1, out
        assert f"the witness holds entry {end} with hash {head['entry_hash']}" in out
        assert f"the local log ends at entry {end - 4}: its tail was cut" in out
