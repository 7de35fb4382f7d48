"""Certificate renewal end to end on a real RabbitMQ (issue 15.3): agents whose certificates are
due ask ``isa-broker serve --issue-renewals`` for renewal, install the answer from the next
manifest without a restart or any operator hand-off, and keep delivering throughout."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.config import Settings
from broker.devfed import DevFederation
from broker.serve import serve_manifest
from federation import pki
from federation.canonical import b64url_decode
from federation.manifest import unverified_document
from federation.synth import generate_referral
from tests.support.federation import (
    AgentHandle,
    agent_settings,
    build_federation,
    free_port,
    remove_federation,
)
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

AGENCIES = ["police-scotland", "assist"]
LEAD_DAYS = 400.0  # longer than the 365-day certificates: due the moment the agents start


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    fed = build_federation(tmp_path / "federation", rabbit_server, agencies=AGENCIES)
    try:
        yield fed
    finally:
        remove_federation(fed, rabbit_server)


@contextlib.asynccontextmanager
async def _dev_manifest_server(fed: DevFederation) -> AsyncIterator[str]:
    """``isa-broker serve --issue-renewals`` on a free port; its manifest URL."""
    stop, ready, port = asyncio.Event(), asyncio.Event(), free_port()
    task = asyncio.create_task(serve_manifest(fed.layout, "127.0.0.1", port, stop=stop,
                                              ready=ready, issue_renewals=True))  # fmt: skip
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield f"http://127.0.0.1:{port}/manifest"
    finally:
        stop.set()
        await task


def _renewing(settings: Settings, url: str) -> Settings:
    trust = settings.trust.model_copy(update={
        "manifest_url": url, "manifest_file": None, "manifest_poll_seconds": 0.2,
        "renew_certificate_days": LEAD_DAYS,
    })  # fmt: skip
    return settings.model_copy(update={"trust": trust})


def _held_serial(settings: Settings, agency: str) -> int | None:
    """The serial number of ``agency``'s certificate in the manifest the agent holds on disk
    (not its end: a renewal issued within the second the federation was built ends at the same
    second as the certificate it replaces)."""
    path = settings.data_dir / "manifest.json"
    if not path.exists():
        return None
    for entry in unverified_document(path.read_bytes()).agencies:
        if entry.id == agency:
            return pki.certificate_from_bytes(b64url_decode(entry.certificate)).serial_number
    return None


def _referral(seed: int) -> dict[str, Any]:
    payload = generate_referral("police_concern", random.Random(seed), risk_level="high")
    return {
        "to": "assist", "isa": "isa-police-assist-advocacy", "purpose": "advocacy_after_charge",
        "type": "police_concern", "payload": payload,
    }  # fmt: skip


async def _until(check: Any, within: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


class TestRenewalEndToEnd:
    async def test_due_agents_renew_with_no_operator_and_keep_delivering(
        self, federation: DevFederation
    ) -> None:
        """Both certificates are renewed via serve; referrals before and after are delivered."""
        fed = federation
        start_serials = {a: pki.certificate_from_bytes(fed.layout.agency_cert(a).read_bytes())
                         .serial_number for a in AGENCIES}  # fmt: skip
        async with _dev_manifest_server(fed) as url, aiohttp.ClientSession() as session:
            handles = {
                a: AgentHandle(_renewing(agent_settings(fed, a), url), fed.agency(a).api_token,
                               session)
                for a in AGENCIES
            }  # fmt: skip
            try:
                for handle in handles.values():
                    await handle.start()
                police, assist = handles["police-scotland"], handles["assist"]
                status, before = await police.post("/v1/messages", _referral(1))
                assert status == 202, before
                for agency in AGENCIES:  # each agent holds its own renewed certificate
                    settings = handles[agency].settings
                    await _until(lambda s=settings, a=agency: _held_serial(s, a) not in
                                 (None, start_serials[a]))  # fmt: skip
                status, after = await police.post("/v1/messages", _referral(2))
                assert status == 202, after
                for sent in (before, after):
                    await police.wait_status(sent["id"], {"delivered"})
                assert len(await assist.drain_inbox(2)) == 2
            finally:
                for handle in handles.values():
                    await handle.shutdown()
        audit = (fed.layout.root / "renewals" / "audit.jsonl").read_text(encoding="utf-8")
        assert audit.count('"event":"issued"') == 2
