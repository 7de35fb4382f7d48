"""What the broker and its operator see of a referral, read from a real RabbitMQ queue.

Issue 13 point 4: envelope v1 showed the broker each referral's type, ISA, purpose, lawful basis,
risk level and handling duties. Here the sender's agent runs alone, so its envelope waits in the
recipient's queue; the operator's (admin) connection takes it exactly as RabbitMQ holds it,
checks its body and every AMQP property, and puts it back. Then the recipient's agent starts and
the referral is delivered and receipted: v2 by default, and v1 from a sender that kept
``[envelope] send_version = 1`` for the transition.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aio_pika.abc
import aiohttp
import pytest

from agent.config import EnvelopeSettings
from agent.runtime import load_registry
from broker.devfed import DevFederation
from federation.envelope import EnvelopeSpec, WireVersion
from federation.pipeline import prepare
from federation.synth import generate_referral
from federation.topology import inbox_queue
from tests.support.federation import AgentHandle, agent_settings, running_agents, vhost_of
from tests.support.processes import isolated_federation_fixture  # noqa: F401
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]

SENDER, RECIPIENT = "police-scotland", "assist"
ISA, PURPOSE, KIND = "isa-police-assist-advocacy", "advocacy_after_charge", "police_concern"


@dataclass(frozen=True)
class Held:
    """One message as RabbitMQ held it: the body and every AMQP property."""

    body: bytes
    properties: dict[str, Any]

    def shows(self, value: str) -> bool:
        return value.encode() in self.body or value in repr(self.properties)


def referral(seed: int) -> dict[str, Any]:
    payload = generate_referral(KIND, random.Random(seed), risk_level="high")
    return {"to": RECIPIENT, "isa": ISA, "purpose": PURPOSE, "type": KIND, "payload": payload}


def spec_of(fed: DevFederation, body: dict[str, Any]) -> EnvelopeSpec:
    """The meta the sender's agent seals for ``body`` (the same pure decision it takes)."""
    isa = load_registry(fed.layout.policies).get(ISA)
    assert isa is not None
    prepared = prepare(
        isa, sender=SENDER, recipient=RECIPIENT, purpose=PURPOSE, message_type=KIND,
        payload=body["payload"], now=datetime.now(UTC), ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prepared.spec is not None, prepared.decision.reasons
    return prepared.spec


def meta_values(spec: EnvelopeSpec) -> list[str]:
    """Every meta string a broker must not see: type, purpose, ISA id and hash, risk level,
    lawful-basis codes and handling duties."""
    codes = [c for v in spec.lawful_basis.values() for c in ([v] if isinstance(v, str) else v)]
    values = [spec.type, spec.purpose, spec.isa.id, spec.isa.sha256, spec.risk, *codes]
    assert codes, "the flow under test has lawful-basis codes"
    assert spec.handling, "the flow under test has handling duties"
    return [*values, *spec.handling]


@pytest.fixture
async def operator(
    isolated_federation: DevFederation, rabbit_server: RabbitServer
) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """The operator's (admin) AMQP channel on the federation's vhost."""
    vhost = vhost_of(isolated_federation)
    connection = await aio_pika.connect(rabbit_server.amqp_url_for(vhost))
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def take_and_requeue(channel: aio_pika.abc.AbstractChannel, queue_name: str) -> Held:
    """Read the one message waiting in ``queue_name`` and put it back for its consumer."""
    queue = await channel.get_queue(queue_name, ensure=False)
    message = await queue.get(no_ack=False, fail=False, timeout=10)
    assert message is not None, f"nothing waiting in {queue_name}"
    held = Held(message.body, dict(message.info()))
    await message.nack(requeue=True)
    return held


async def send_intercept_deliver(
    fed: DevFederation, operator: aio_pika.abc.AbstractChannel, version: WireVersion
) -> tuple[Held, dict[str, Any], dict[str, Any]]:
    """Send one referral, intercept it in the recipient's queue, then deliver it; returns what
    the broker held, the recipient's inbox item and the sender's final status."""
    settings = agent_settings(fed, SENDER)
    settings = settings.model_copy(update={"envelope": EnvelopeSettings(send_version=version)})
    async with aiohttp.ClientSession() as session:
        sender = AgentHandle(settings, fed.agency(SENDER).api_token, session)
        await sender.start()
        try:
            status, accepted = await sender.post("/v1/messages", referral(seed=version))
            assert status == 202, accepted
            await sender.wait_status(accepted["id"], {"sent"})
            held = await take_and_requeue(operator, inbox_queue(RECIPIENT))
            async with running_agents(fed, RECIPIENT) as agents:
                items = await agents[RECIPIENT].drain_inbox(1)
                final = await sender.wait_status(accepted["id"], {"delivered", "rejected"})
        finally:
            await sender.shutdown()
    assert [item["id"] for item in items] == [accepted["id"]]
    return held, items[0], final


class TestBrokerView:
    async def test_v2_envelope_shows_the_broker_no_referral_meta(
        self, isolated_federation: DevFederation, operator: aio_pika.abc.AbstractChannel
    ) -> None:
        """A v2 envelope's AMQP body and properties carry none of its type, ISA, purpose, risk,
        lawful-basis codes or handling duties, and the referral is delivered with all of them."""
        held, item, final = await send_intercept_deliver(isolated_federation, operator, 2)
        spec = spec_of(isolated_federation, referral(seed=2))
        assert held.body[:4] == b"IRL2"
        assert [v for v in meta_values(spec) if held.shows(v)] == []
        assert (item["type"], item["isa"]["id"], item["purpose"], item["risk"]) == (
            KIND, ISA, PURPOSE, "high",
        )  # fmt: skip
        assert (item["lawful_basis"], item["handling"]) == (spec.lawful_basis, spec.handling)
        assert (final["status"], final["type"], final["purpose"]) == ("delivered", KIND, PURPOSE)

    async def test_amqp_properties_are_exactly_the_documented_ones(
        self, isolated_federation: DevFederation, operator: aio_pika.abc.AbstractChannel
    ) -> None:
        """The envelope's AMQP properties are message_id, type, user_id, content_type and
        persistence, plus RabbitMQ's own delivery count, as docs/protocol.md section 9 lists."""
        held, item, _ = await send_intercept_deliver(isolated_federation, operator, 2)
        assert set(held.properties["headers"] or {}) <= {"x-delivery-count"}
        set_properties = {
            k: v for k, v in held.properties.items()
            if v not in (None, {}, 0) and k not in {"body_size", "consumer_tag", "delivery_tag",
                                                    "exchange", "routing_key", "redelivered",
                                                    "message_count", "cluster_id",
                                                    "headers"}
        }  # fmt: skip
        user = isolated_federation.agency(SENDER).broker_user
        assert set_properties == {
            "message_id": item["id"], "type": "envelope", "user_id": user,
            "content_type": "application/octet-stream", "delivery_mode": 2,
        }  # fmt: skip

    async def test_v1_sender_still_delivers_during_the_transition(
        self, isolated_federation: DevFederation, operator: aio_pika.abc.AbstractChannel
    ) -> None:
        """A sender kept on v1 sends IRL1 (its meta in clear, as before) and the v2-era
        recipient still verifies, delivers and receipts it."""
        held, item, final = await send_intercept_deliver(isolated_federation, operator, 1)
        spec = spec_of(isolated_federation, referral(seed=1))
        assert held.body[:4] == b"IRL1"
        assert [held.shows(spec.purpose), held.shows(spec.isa.id)] == [True, True]
        assert (item["type"], item["isa"]["id"], item["purpose"]) == (KIND, ISA, PURPOSE)
        assert final["status"] == "delivered"
