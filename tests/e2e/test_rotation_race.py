"""A key rotated by the CLI while the recipient runs is usable at once (no key_unknown race)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from agent.runtime import agent_store
from broker.devfed import DevFederation
from tests.integration.test_audit_e2e import _cli, _operator_announces, _referral
from tests.support.federation import AgentHandle, agent_settings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


class TestRotationWhileRunning:
    async def test_a_message_for_a_key_the_housekeeper_has_not_loaded_yet_is_delivered(
        self, live_federation: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Rotate with `isa-agent keys rotate` while ASSIST runs (housekeeping every hour):
        the sender, once it holds the new manifest, seals to the new kid, and ASSIST re-reads
        its keyring instead of rejecting the envelope with key_unknown."""
        fed = live_federation
        police = agent_settings(fed, "police-scotland")
        police = police.model_copy(
            update={"trust": police.trust.model_copy(update={"manifest_poll_seconds": 0.1})}
        )
        assist = agent_settings(fed, "assist")
        assist = assist.model_copy(
            update={"limits": assist.limits.model_copy(update={"housekeeping_seconds": 3600})}
        )
        async with aiohttp.ClientSession() as session:
            sender = AgentHandle(police, fed.agency("police-scotland").api_token, session)
            recipient = AgentHandle(assist, fed.agency("assist").api_token, session)
            await recipient.start()
            await sender.start()
            try:
                config = str(fed.agency("assist").config)
                code, out = await _cli(capsys, "keys", "rotate", "--config", config)
                assert code == 0, out
                announcement = Path(out.split("signed announcement: ")[1].split()[0])
                starts = await asyncio.to_thread(_operator_announces, fed, announcement)
                await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.5)
                status, body = await sender.post(
                    "/v1/messages", _referral(3, "Cary SYNTHBROOK", "1979-02-02")
                )
                assert status == 202, body
                final = await sender.wait_status(body["id"], {"delivered", "rejected"})
            finally:
                await sender.shutdown()
                await recipient.shutdown()
        async with agent_store(police) as store:
            sealed_to = (await store.message_status(body["id"])).header["recipient_key"]
        assert sealed_to == announcement.stem  # the new key, not loaded by the housekeeper
        assert final["status"] == "delivered", final["receipt"]
