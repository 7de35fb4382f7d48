"""Three agencies exchange referrals through a real RabbitMQ under the shipped ISAs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import leaf_paths, running_agents

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

#: (sender, recipient, ISA, purpose, message type, risk level)
EXCHANGES = [
    ("police-scotland", "assist", "isa-police-assist-advocacy", "advocacy_after_charge",
     "police_concern", "high"),
    ("police-scotland", "council-sw", "isa-police-council-concerns",
     "child_and_adult_protection", "police_concern", "medium"),
    ("council-sw", "marac-coordinator", "isa-marac-referrals", "marac_risk_management",
     "marac_referral", "high"),
    ("assist", "marac-coordinator", "isa-marac-referrals", "marac_risk_management",
     "marac_referral", "high"),
]  # fmt: skip
AGENCIES = ("police-scotland", "assist", "council-sw", "marac-coordinator")


@dataclass
class Sent:
    sender: str
    recipient: str
    body: dict[str, Any]
    shared: set[str]


def request(exchange: tuple[str, ...], seed: int) -> dict[str, Any]:
    _, to, isa, purpose, kind, level = exchange
    payload = generate_referral(kind, random.Random(seed), risk_level=level)
    return {"to": to, "isa": isa, "purpose": purpose, "type": kind, "payload": payload}


class TestThreeAgencyExchange:
    async def test_each_recipient_receives_exactly_what_the_preview_promised(
        self, live_federation: DevFederation
    ) -> None:
        """Preview == what the recipient stores; every sender sees a verified delivered receipt."""
        async with running_agents(live_federation, *AGENCIES) as agents:
            sent: dict[str, Sent] = {}
            for seed, exchange in enumerate(EXCHANGES):
                sender, body = exchange[0], request(exchange, seed)
                status, preview = await agents[sender].post("/v1/messages/preview", body)
                assert status == 200, preview
                assert preview["decision"] == "PERMIT", preview
                status, accepted = await agents[sender].post("/v1/messages", body)
                assert status == 202, accepted
                assert accepted["shared_fields"] == preview["shared_fields"]
                assert accepted["withheld_fields"] == preview["withheld_fields"]
                sent[accepted["id"]] = Sent(sender, body["to"], body, set(preview["shared_fields"]))

            received: dict[str, dict[str, Any]] = {}
            for agency in {s.recipient for s in sent.values()}:
                expected = sum(1 for s in sent.values() if s.recipient == agency)
                for item in await agents[agency].drain_inbox(expected):
                    received[item["id"]] = item | {"to": agency}

            assert set(received) == set(sent)
            for message_id, message in sent.items():
                item = received[message_id]
                assert (item["to"], item["from"]) == (message.recipient, message.sender)
                assert leaf_paths(item["payload"]) == message.shared
                assert item["isa"]["id"] == message.body["isa"]
                assert item["purpose"] == message.body["purpose"]
                status_body = await agents[message.sender].wait_status(message_id, {"delivered"})
                receipt = status_body["receipt"]
                assert (receipt["status"], receipt["verified"]) == ("delivered", True)
