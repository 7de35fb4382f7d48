"""A message its recipient never collects before expires_at ends as expired (non-delivery)."""

from __future__ import annotations

import random

import pytest

from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import agent_settings, running_agents

pytestmark = [pytest.mark.rabbitmq]


class TestNonDelivery:
    async def test_uncollected_message_expires_with_a_non_delivery_entry(
        self, live_federation: DevFederation
    ) -> None:
        """Recipient offline, 2 s time to live: the sender's status becomes expired."""
        async with running_agents(live_federation, "police-scotland") as agents:
            sender = agents["police-scotland"]
            await sender.shutdown()
            limits = sender.settings.limits.model_copy(
                update={"message_ttl_hours": 2 / 3600, "housekeeping_seconds": 0.2}
            )
            sender.settings = agent_settings(live_federation, "police-scotland").model_copy(
                update={"limits": limits}
            )
            await sender.start()
            payload = generate_referral("police_concern", random.Random(2), risk_level="high")
            status, body = await sender.post(
                "/v1/messages",
                {"to": "assist", "isa": "isa-police-assist-advocacy",
                 "purpose": "advocacy_after_charge", "type": "police_concern",
                 "payload": payload},
            )  # fmt: skip
            assert status == 202, body
            final = await sender.wait_status(body["id"], {"expired", "delivered"}, within=15)
        assert final["status"] == "expired"
        assert final["receipt"] is None
        assert [h["status"] for h in final["history"]][-1] == "expired"
