"""A receipt from the wrong agency, or for a copy republished by a third party, does not settle
the sender's message (issue 13, point 1).

The review's attack, against a real RabbitMQ with real agents: holding only assist's broker
credentials, take a police-scotland -> assist envelope from assist's queue (unacknowledged, so
the genuine one stays in the broker), publish a copy of it to marac-coordinator (which answers
with a signed ``rejected (wrong_recipient)``) and into assist's own queue (which assist answers
with a signed ``rejected (transport_identity)``), then let the genuine envelope go. The sender
must refuse marac-coordinator's receipt, treat assist's rejection of the copy as not final, and
end ``delivered`` when assist delivers the genuine envelope.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import aio_pika.abc
import pytest

from agent.audit import load_subject_secret, subject_key_path
from agent.clock import utcnow
from agent.commands.audit import open_audit_log
from agent.config import load_settings
from broker.devfed import DevFederation
from federation.envelope import peek_header
from federation.synth import generate_referral
from federation.topology import EXCHANGE, dead_letter_queue, inbox_queue
from tests.support.federation import AgentHandle, running_agents, vhost_of
from tests.support.processes import isolated_federation_fixture  # noqa: F401
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]

SENDER, RECIPIENT, THIRD = "police-scotland", "assist", "marac-coordinator"
RECEIPT_COUNTERS = ("isa_agent_receipts_total", "isa_agent_receipts_refused_total")


@asynccontextmanager
async def as_recipient(
    fed: DevFederation, server: RabbitServer
) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """An AMQP channel holding only the recipient's broker credentials (the attacker)."""
    agency = fed.agency(RECIPIENT)
    url = server.amqp_url_for(vhost_of(fed), agency.broker_user, agency.broker_password)
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


async def republish(
    channel: aio_pika.abc.AbstractChannel, user: str, to: str, frame: bytes
) -> None:
    exchange = await channel.get_exchange(EXCHANGE, ensure=False)
    message = aio_pika.Message(
        frame, type="envelope", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=peek_header(frame).id, user_id=user,
    )  # fmt: skip
    await exchange.publish(message, routing_key=to, mandatory=True)


async def counter(agent: AgentHandle, name: str) -> int:
    """A counter from /metrics, 0 when the agent does not export it."""
    status, text = await agent.get("/metrics")
    assert status == 200, text
    lines = [x for x in text.splitlines() if x.startswith(name + " ")]
    return int(float(lines[0].split()[1])) if lines else 0


async def wait_receipts_handled(agent: AgentHandle, wanted: int, within: float = 20) -> None:
    """Until the agent has accepted or refused ``wanted`` receipts in all."""
    deadline = asyncio.get_running_loop().time() + within
    while sum([await counter(agent, name) for name in RECEIPT_COUNTERS]) < wanted:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {wanted} receipts"
        await asyncio.sleep(0.05)


async def submit(agent: AgentHandle) -> str:
    payload = generate_referral("police_concern", random.Random(13), risk_level="high")
    status, body = await agent.post("/v1/messages", {
        "to": RECIPIENT, "isa": "isa-police-assist-advocacy",
        "purpose": "advocacy_after_charge", "type": "police_concern", "payload": payload,
    })  # fmt: skip
    assert status == 202, body
    await agent.wait_status(body["id"], {"sent"})
    return str(body["id"])


class TestReceiptForACopy:
    async def test_wrong_agency_rejection_of_a_copy_is_refused_and_the_sender_ends_delivered(
        self, isolated_federation: DevFederation, rabbit_server: RabbitServer
    ) -> None:
        """marac-coordinator's signed wrong_recipient rejection of a copy changes nothing."""
        fed, user = isolated_federation, isolated_federation.agency(RECIPIENT).broker_user
        async with running_agents(fed, SENDER, THIRD, RECIPIENT) as agents:
            sender = agents[SENDER]
            await agents[RECIPIENT].shutdown()  # the attacker reads assist's queue first
            message_id = await submit(sender)
            async with as_recipient(fed, rabbit_server) as attacker:
                genuine = await hold_genuine(attacker)
                await republish(attacker, user, THIRD, genuine)
                await wait_receipts_handled(sender, 1)
                assert (await status_of(sender, message_id))["status"] == "sent"
                assert await counter(sender, "isa_agent_receipts_refused_total") == 1
            await agents[RECIPIENT].start()  # the genuine envelope went back to assist's queue
            body = await sender.wait_status(message_id, {"delivered", "rejected"})
            assert (body["status"], body["receipt"]["status"]) == ("delivered", "delivered")
        assert await dead_letter_depth(fed, rabbit_server) == 1  # marac's receipt, kept
        assert await refusals_audited(fed) == [
            (message_id, THIRD, "receipt refused: unexpected_issuer; it said rejected "
             "(wrong_recipient)")
        ]  # fmt: skip

    async def test_transport_identity_rejection_of_a_copy_does_not_stick_sender_ends_delivered(
        self, isolated_federation: DevFederation, rabbit_server: RabbitServer
    ) -> None:
        """assist's signed rejection of a copy republished by a third party is not final."""
        fed, user = isolated_federation, isolated_federation.agency(RECIPIENT).broker_user
        async with running_agents(fed, SENDER, RECIPIENT) as agents:
            sender, recipient = agents[SENDER], agents[RECIPIENT]
            await recipient.shutdown()
            message_id = await submit(sender)
            async with as_recipient(fed, rabbit_server) as attacker:
                genuine = await hold_genuine(attacker)
                await republish(attacker, user, RECIPIENT, genuine)
                await recipient.start()  # it sees only the copy: the genuine one is held
                await wait_receipts_handled(sender, 1)
                body = await status_of(sender, message_id)
                assert (body["status"], body["receipt"]) == ("sent", None)
            body = await sender.wait_status(message_id, {"delivered", "rejected"})
            assert (body["status"], body["receipt"]["status"]) == ("delivered", "delivered")
            inbox = (await recipient.get("/v1/inbox?after=0&limit=10"))[1]
            assert [item["id"] for item in inbox["items"]] == [message_id]


async def hold_genuine(channel: aio_pika.abc.AbstractChannel) -> bytes:
    """Take the genuine envelope from the recipient's queue without acknowledging it: it goes
    back to the queue when the attacker's connection closes."""
    queue = await channel.get_queue(inbox_queue(RECIPIENT), ensure=False)
    message = await queue.get(no_ack=False, timeout=10)
    return bytes(message.body)


async def status_of(agent: AgentHandle, message_id: str) -> dict[str, Any]:
    status, body = await agent.get(f"/v1/messages/{message_id}")
    assert status == 200, body
    return dict(body)


async def refusals_audited(fed: DevFederation) -> list[tuple[str | None, str | None, str]]:
    """The sender's audit entries for refused receipts: (envelope id, issuer, detail)."""
    settings = load_settings(fed.agency(SENDER).config, environ={})
    secret = load_subject_secret(subject_key_path(settings.keys.encryption_dir))
    async with open_audit_log(settings, subject_secret=secret, clock=utcnow) as log:
        entries = await log.entries()
    refused = [e for e in entries if e.action == "receipt" and e.outcome == "refused"]
    return [(e.message_id, e.counterparty, e.detail) for e in refused]


async def dead_letter_depth(fed: DevFederation, server: RabbitServer) -> int:
    connection = await aio_pika.connect(server.amqp_url_for(vhost_of(fed)))
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(dead_letter_queue(SENDER), passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()
