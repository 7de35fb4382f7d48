"""ISA distribution end to end (issue 15.5), real RabbitMQ and real agents: the operator publishes
a new ISA version with ``manifest build`` and ``isa-broker serve``; running agents apply it
without a restart; a message sealed under the replaced version while it governed is delivered
within the grace window and refused as ``isa_superseded`` after it; a receiver behind the sender
fetches the manifest once instead of refusing; a manifest whose ISA document does not match its
pin is refused, audited and the held one kept.

The federation and every manifest are made at the wall clock's now; the one agent that must be
past the grace runs with its own clock eight days ahead (``AgentHandle.clock``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.cli import main as agent_main
from agent.config import Settings
from broker.devfed import DevFederation, create_dev_federation
from broker.fedstate import publish_manifest, read_private
from broker.serve import ManifestFile, create_app
from devtools import federation as tools_federation
from federation import pki
from federation.canonical import b64url_decode, b64url_encode
from federation.manifest import build_manifest, unverified_document
from tests.integration.test_audit_e2e import _referral
from tests.integration.test_manifest_serve import http_server
from tests.integration.test_revocation import health, wait_for_serial
from tests.support.federation import POLICIES, AgentHandle, agent_settings
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

ISA_ID, FILE = "isa-police-assist-advocacy", "police-to-assist.yaml"
SENDER, RECIPIENT = "police-scotland", "assist"
AHEAD = timedelta(days=8)  # past the default 7-day grace


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    """police-scotland and assist on a fresh vhost; manifests valid 10 days (so an agent eight
    days ahead still holds a valid one)."""
    tag = uuid.uuid4().hex[:10]
    fed = create_dev_federation(
        tmp_path / "federation", policies=POLICIES, now=datetime.now(UTC),
        agencies=[SENDER, RECIPIENT], amqp_url=rabbit_server.base_amqp,
        management_url=rabbit_server.management_url, vhost=f"test-isa-{tag}",
        admin_user=rabbit_server.admin_user, admin_password=rabbit_server.admin_password,
        user_prefix=f"t{tag}-", manifest_validity=timedelta(days=10),
    )  # fmt: skip
    try:
        tools_federation.provision(fed)
        yield fed
    finally:
        tools_federation.remove(fed, rabbit_server)


def _settings(fed: DevFederation, agency: str, url: str, poll: float = 0.2) -> Settings:
    """``agency`` polling ``url`` (no manifest file, no policies_dir); messages live 10 days."""
    settings = agent_settings(fed, agency)
    trust = {"manifest_url": url, "manifest_file": None, "manifest_poll_seconds": poll}
    return settings.model_copy(update={
        "trust": settings.trust.model_copy(update=trust),
        "limits": settings.limits.model_copy(update={"message_ttl_hours": 240.0}),
    })  # fmt: skip


def _publish_version(fed: DevFederation, version: str) -> None:
    """The operator: the ISA's new text in policies/, then the next manifest, effective now."""
    path = fed.layout.policies / FILE
    text = path.read_text()
    current = text.split("version: ", 1)[1].split("\n", 1)[0]
    path.write_text(text.replace(f"version: {current}", f"version: {version}", 1))
    publish_manifest(fed.layout, datetime.now(UTC), isa_switch_minutes=0)


async def _isa_version(agent: AgentHandle) -> str:
    status, isas = await agent.get("/v1/isas")
    assert status == 200, isas
    return str(next(i["version"] for i in isas if i["id"] == ISA_ID))


async def _wait_for_version(agent: AgentHandle, version: str, within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (held := await _isa_version(agent)) != version:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{agent.settings.agency} still has {ISA_ID} {held}")
        await asyncio.sleep(0.05)


async def _send(sender: AgentHandle, seed: int) -> str:
    status, body = await sender.post(
        "/v1/messages", _referral(seed, "Ada SYNTHFIELD", "1979-02-03")
    )
    assert status == 202, body
    await sender.wait_status(body["id"], {"sent", "delivered"})
    return str(body["id"])


async def _audit(
    fed: DevFederation, agency: str, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """The agency's audit log, exported as its operator would (``isa-agent audit export``)."""
    capsys.readouterr()
    config = str(fed.agency(agency).config)
    code = await asyncio.to_thread(agent_main, ["audit", "export", "--config", config])
    out = capsys.readouterr().out
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines() if line]


class TestIsaDistribution:
    async def test_a_new_version_reaches_running_agents_and_in_flight_messages_keep_theirs(
        self, federation: DevFederation
    ) -> None:
        """1.0.0 governs; a referral sealed under it waits while ASSIST is down; 1.1.0 is
        published and police-scotland, running, seals under it from its next poll; ASSIST comes
        back and delivers both, each under its own version. Then ASSIST, running with a poll
        far off, meets 1.2.0 from police-scotland: it fetches the manifest once and delivers."""
        fed = federation
        async with (
            http_server(create_app(ManifestFile(fed.layout))) as base,
            aiohttp.ClientSession() as session,
        ):
            url = f"{base}/manifest"
            police = AgentHandle(_settings(fed, SENDER, url), fed.agency(SENDER).api_token,
                                 session)  # fmt: skip
            assist = AgentHandle(_settings(fed, RECIPIENT, url, poll=3600),
                                 fed.agency(RECIPIENT).api_token, session)  # fmt: skip
            await police.start()
            try:
                assert await _isa_version(police) == "1.0.0"
                first = await _send(police, 1)  # in flight: ASSIST is not running
                _publish_version(fed, "1.1.0")
                await wait_for_serial(police, 2)  # the running agent, no restart
                await _wait_for_version(police, "1.1.0")
                second = await _send(police, 2)
                await assist.start()
                delivered = await assist.drain_inbox(2)
                for message in (first, second):
                    final = await police.wait_status(message, {"delivered", "rejected"})
                    assert final["status"] == "delivered", final
                assert sorted(i["isa"]["version"] for i in delivered) == ["1.0.0", "1.1.0"]
                _publish_version(fed, "1.2.0")  # ASSIST polls hourly: it has not seen it
                await _wait_for_version(police, "1.2.0")
                third = await _send(police, 3)
                final = await police.wait_status(third, {"delivered", "rejected"})
                assert final["status"] == "delivered", final
                [item] = await assist.drain_inbox(1)
                assert item["isa"]["version"] == "1.2.0"
                assert await _isa_version(assist) == "1.2.0"  # caught up, no restart
            finally:
                await police.shutdown()
                await assist.shutdown()

    async def test_a_message_under_the_replaced_version_after_its_grace_is_isa_superseded(
        self, federation: DevFederation
    ) -> None:
        """Sealed under 1.0.0 before 1.1.0 replaced it, received eight days later (the grace is
        seven): ASSIST refuses it as isa_superseded and police-scotland's message says so."""
        fed = federation
        async with (
            http_server(create_app(ManifestFile(fed.layout))) as base,
            aiohttp.ClientSession() as session,
        ):
            url = f"{base}/manifest"
            police = AgentHandle(_settings(fed, SENDER, url), fed.agency(SENDER).api_token,
                                 session)  # fmt: skip
            late = AgentHandle(_settings(fed, RECIPIENT, url), fed.agency(RECIPIENT).api_token,
                               session, clock=lambda: datetime.now(UTC) + AHEAD)  # fmt: skip
            await police.start()
            try:
                message = await _send(police, 4)
                _publish_version(fed, "1.1.0")
                await late.start()
                final = await police.wait_status(message, {"delivered", "rejected"})
            finally:
                await police.shutdown()
                await late.shutdown()
        assert final["status"] == "rejected", final
        assert final["receipt"]["reason"] == "isa_superseded"

    async def test_a_manifest_whose_isa_does_not_match_its_pin_is_refused_and_kept_out(
        self, federation: DevFederation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The manifest file police-scotland reads is replaced by serial 2 with one byte of an
        ISA changed (properly signed): the agent keeps serial 1 and its ISAs, /healthz names
        isa_document_mismatch, and its audit log holds one refused manifest_change entry."""
        fed = federation
        source = tmp_path / "manifest.json"
        source.write_bytes(fed.layout.manifest.read_bytes())
        settings = agent_settings(fed, SENDER)
        trust = {"manifest_file": source, "manifest_poll_seconds": 0.2}
        settings = settings.model_copy(update={"trust": settings.trust.model_copy(update=trust)})
        async with aiohttp.ClientSession() as session:
            police = AgentHandle(settings, fed.agency(SENDER).api_token, session)
            await police.start()
            try:
                source.write_bytes(_tampered(fed))
                deadline = asyncio.get_running_loop().time() + 20
                while "isa_document_mismatch" not in str((await health(police))["manifest"]):
                    assert asyncio.get_running_loop().time() < deadline, await health(police)
                    await asyncio.sleep(0.05)
                assert (await health(police))["manifest"]["serial"] == 1
                assert await _isa_version(police) == "1.0.0"
                await asyncio.sleep(0.5)  # more polls of the same bytes: still one entry
            finally:
                await police.shutdown()
        entries = await _audit(fed, SENDER, capsys)
        refused = [e for e in entries if e.get("outcome") == "refused"]
        assert len(refused) == 1, refused
        assert refused[0]["action"] == "manifest_change"
        assert "isa_document_mismatch" in refused[0]["detail"]


def _tampered(fed: DevFederation) -> bytes:
    """The next serial, signed by the federation's signer, one byte changed in one ISA."""
    doc = unverified_document(fed.layout.manifest.read_bytes())
    isas = []
    for entry in doc.isas:
        if entry.id == ISA_ID and entry.document is not None:
            text = b64url_decode(entry.document).replace(b"advocacy", b"advocacz", 1)
            entry = entry.model_copy(update={"document": b64url_encode(text)})
        isas.append(entry)
    forged = doc.model_copy(update={"serial": doc.serial + 1, "isas": isas})
    return build_manifest(
        forged, signer_key=read_private(fed.layout.signer_key),
        signer_cert=pki.certificate_from_bytes(fed.layout.signer_cert.read_bytes()),
    )  # fmt: skip
