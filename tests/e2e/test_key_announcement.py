"""A key the running agent rotates by itself reaches its senders with no operator action
(issue 15.2): the agent posts the signed announcement to ``isa-broker serve``, which publishes
the next manifest serial; the sender seals to the new key after its next poll."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.config import Settings
from agent.runtime import agent_store
from broker.devfed import DevFederation, create_dev_federation
from broker.fedstate import publish_manifest
from broker.serve import ManifestFile, create_app
from devtools import federation as tools_federation
from tests.integration.test_audit_e2e import _referral
from tests.integration.test_manifest_serve import http_server
from tests.integration.test_revocation import wait_for_serial
from tests.support.federation import POLICIES, AgentHandle, agent_settings
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

AGE = timedelta(days=28)  # the first keys were made 28 days ago: rotation is due (3-day lead)


@pytest.fixture
def aged_federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[DevFederation]:
    """police-scotland and assist, keys and certificates made 28 days ago, a manifest of now."""
    tag = uuid.uuid4().hex[:10]
    fed = create_dev_federation(
        tmp_path / "federation", policies=POLICIES, now=datetime.now(UTC) - AGE,
        agencies=["police-scotland", "assist"], amqp_url=rabbit_server.base_amqp,
        management_url=rabbit_server.management_url, vhost=f"test-ann-{tag}",
        admin_user=rabbit_server.admin_user, admin_password=rabbit_server.admin_password,
        user_prefix=f"t{tag}-",
    )  # fmt: skip
    try:
        tools_federation.provision(fed)
        publish_manifest(fed.layout, datetime.now(UTC))
        yield fed
    finally:
        tools_federation.remove(fed, rabbit_server)


def _served(fed: DevFederation, agency: str, url: str, **limits: Any) -> Settings:
    """``agency``'s settings polling ``url`` every 0.2 s (and ``limits``), no manifest file."""
    settings = agent_settings(fed, agency)
    trust = {"manifest_url": url, "manifest_file": None, "manifest_poll_seconds": 0.2}
    return settings.model_copy(update={
        "trust": settings.trust.model_copy(update=trust),
        "limits": settings.limits.model_copy(update=limits),
    })  # fmt: skip


async def _wait_for_file_count(folder: Path, count: int, within: float = 20) -> list[Path]:
    deadline = asyncio.get_running_loop().time() + within
    while len(files := await asyncio.to_thread(lambda: sorted(folder.glob("*.json")))) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{folder}: {len(files)} announcements, not {count}")
        await asyncio.sleep(0.05)
    return files


class TestAutomaticAnnouncement:
    async def test_a_sender_seals_to_a_key_the_recipient_rotated_by_itself(
        self, aged_federation: DevFederation
    ) -> None:
        """ASSIST's housekeeper rotates its due key and posts it; serve publishes serial 3;
        police-scotland, polling, seals its next referral to the new kid, which is delivered."""
        fed = aged_federation
        first = {p.stem for p in fed.layout.announcements("assist").glob("*.json")}
        async with http_server(create_app(ManifestFile(fed.layout))) as base:
            url = f"{base}/manifest"
            police = _served(fed, "police-scotland", url)
            assist = _served(fed, "assist", url, housekeeping_seconds=0.5)
            async with aiohttp.ClientSession() as session:
                sender = AgentHandle(police, fed.agency("police-scotland").api_token, session)
                recipient = AgentHandle(assist, fed.agency("assist").api_token, session)
                await recipient.start()
                await sender.start()
                try:
                    published = await _wait_for_file_count(fed.layout.announcements("assist"), 2)
                    await wait_for_serial(sender, 3)
                    status, body = await sender.post(
                        "/v1/messages", _referral(5, "Dale SYNTHWICK", "1981-05-05")
                    )
                    assert status == 202, body
                    final = await sender.wait_status(body["id"], {"delivered", "rejected"})
                finally:
                    await sender.shutdown()
                    await recipient.shutdown()
        async with agent_store(police) as store:
            sealed_to = (await store.message_status(body["id"])).header["recipient_key"]
        rotated = {p.stem for p in published} - first
        assert [sealed_to] == list(rotated)
        assert final["status"] == "delivered", final["receipt"]
