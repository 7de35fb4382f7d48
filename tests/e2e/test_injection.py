"""Forged, tampered, replayed and ISA-breaking envelopes injected into a recipient's queue.

The broker operator (or anyone holding the admin account) can put any bytes into an agency's
inbox queue; a misbehaving sender can seal whatever it likes with its own certified key. These
tests do exactly that against a real RabbitMQ and a running recipient agent, and state what the
recipient does:

- an envelope altered after signing (any byte flipped, bytes added or cut), or forged (signed
  by an uncertified key, or by another agency's certified key), or carrying a wrong AMQP
  ``type``, does not authenticate its ``from``: it is dead-lettered for the operator, never
  delivered, and NO receipt goes to the agency it claims to come from (a receipt would let
  anyone make the recipient write to a third party's queue);
- an envelope validly signed by its sender that fails a later check (expired, citing another
  text of the ISA, addressed to someone else, fields the ISA does not allow at its risk level,
  lawful-basis tags the ISA does not state) is dead-lettered, never delivered, and the sender
  gets a receipt signed by the recipient: ``rejected`` with the reason code and the envelope's
  id and SHA-256;
- a replayed envelope (the exact bytes again, also after the recipient restarted) reaches the
  case system once only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aio_pika
import aio_pika.abc
import pytest

from agent.keystore import read_signing_key
from agent.runtime import agent_store, load_registry
from broker.devfed import DevFederation
from federation import pki
from federation.envelope import (
    EnvelopeSpec,
    IsaRef,
    Sealed,
    envelope_sha256,
    peek_header,
    seal_envelope,
)
from federation.errors import EnvelopeRejected
from federation.keys import SigningKey
from federation.manifest import Manifest, reload_manifest
from federation.pipeline import prepare
from federation.receipts import Receipt, verify_receipt
from federation.referrals import parse_payload, payload_dict
from federation.synth import generate_referral
from federation.topology import EXCHANGE, dead_letter_queue, inbox_queue
from tests.support.federation import AgentHandle, agent_settings, running_agents, vhost_of
from tests.support.processes import isolated_federation_fixture  # noqa: F401
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]

SENDER, RECIPIENT = "police-scotland", "assist"
Risk = Literal["standard", "medium", "high"]
ISA, PURPOSE, KIND = "isa-police-assist-advocacy", "advocacy_after_charge", "police_concern"


@dataclass(frozen=True)
class Forger:
    """The sender's own certified signing key, used outside its agent (a misbehaving sender)."""

    fed: DevFederation
    signing_key: SigningKey
    manifest: Manifest

    @classmethod
    def of(cls, fed: DevFederation, agency: str) -> Forger:
        layout = fed.layout
        root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
        manifest = reload_manifest(
            layout.manifest.read_bytes(), root_cert=root, pinned_fingerprint=pki.fingerprint(root)
        )
        key = read_signing_key(layout.agency_dir(agency) / "keys" / "signing.key")
        return cls(fed, key, manifest)

    def spec_and_payloads(
        self, recipient: str, isa_id: str, purpose: str, risk: Risk, seed: int = 1
    ) -> tuple[EnvelopeSpec, dict[str, Any], dict[str, Any]]:
        """What an honest agent would seal, and the whole payload before minimisation."""
        isa = load_registry(self.fed.layout.policies).get(isa_id)
        assert isa is not None
        raw = generate_referral(KIND, random.Random(seed), risk_level=risk)
        prepared = prepare(
            isa, sender=SENDER, recipient=recipient, purpose=purpose, message_type=KIND,
            payload=raw, now=datetime.now(UTC), ttl=timedelta(hours=1),
        )  # fmt: skip
        assert prepared.spec is not None, prepared.decision.reasons
        return prepared.spec, prepared.payload, payload_dict(parse_payload(KIND, raw))

    def seal(
        self, spec: EnvelopeSpec, payload: dict[str, Any], now: datetime | None = None
    ) -> bytes:
        return self.sealed(spec, payload, now).frame

    def sealed(
        self, spec: EnvelopeSpec, payload: dict[str, Any], now: datetime | None = None
    ) -> Sealed:
        """The frame and the whole header (meta included) the sender's agent would keep."""
        recipient = self.manifest.current_encryption_key(spec.recipient, datetime.now(UTC))
        assert recipient is not None
        return seal_envelope(
            payload, spec, signing_key=self.signing_key,
            recipient_public=recipient.public_bytes(), now=now or datetime.now(UTC),
        )  # fmt: skip

    def honest(self, seed: int = 1) -> bytes:
        spec, minimised, _ = self.spec_and_payloads(RECIPIENT, ISA, PURPOSE, "high", seed)
        return self.seal(spec, minimised)


class Broker:
    """The admin's AMQP connection to the federation's vhost, and the sender's own one.

    ``inject`` publishes as the sender's broker user (``user_id`` set, so RabbitMQ validates
    it), exactly as a misbehaving sender could; ``inject_as_admin`` publishes as the operator,
    with no ``user_id``.
    """

    def __init__(
        self, channel: aio_pika.abc.AbstractChannel, sender: aio_pika.abc.AbstractChannel,
        sender_user: str,
    ) -> None:  # fmt: skip
        self.channel = channel
        self.sender = sender
        self.sender_user = sender_user

    async def inject(self, recipient: str, frame: bytes, kind: str = "envelope") -> None:
        exchange = await self.sender.get_exchange(EXCHANGE, ensure=False)
        message = aio_pika.Message(
            frame, type=kind, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=_message_id(frame), user_id=self.sender_user,
        )  # fmt: skip
        await exchange.publish(message, routing_key=recipient, mandatory=True)

    async def inject_as_admin(self, recipient: str, frame: bytes) -> None:
        exchange = await self.channel.get_exchange(EXCHANGE, ensure=False)
        message = aio_pika.Message(
            frame, type="envelope", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=_message_id(frame),
        )  # fmt: skip
        await exchange.publish(message, routing_key=recipient, mandatory=True)

    async def take(self, queue_name: str, expected: int, within: float = 15) -> list[bytes]:
        """Take (and ack) up to ``expected`` messages from a queue, waiting up to ``within``."""
        queue = await self.channel.get_queue(queue_name, ensure=False)
        bodies: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + within
        while len(bodies) < expected and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                bodies.append(bytes(message.body))
        return bodies

    async def depth(self, queue_name: str) -> int:
        declared = await self.channel.declare_queue(queue_name, passive=True)
        count = declared.declaration_result.message_count
        return int(count or 0)


def _message_id(frame: bytes) -> str:
    try:
        return peek_header(frame).id
    except EnvelopeRejected:  # a mangled frame has no readable id (routing metadata only)
        return "unreadable"


@pytest.fixture
async def broker(
    isolated_federation: DevFederation, rabbit_server: RabbitServer
) -> AsyncIterator[Broker]:
    vhost = vhost_of(isolated_federation)
    sender = isolated_federation.agency(SENDER)
    connection = await aio_pika.connect(rabbit_server.amqp_url_for(vhost))
    as_sender = await aio_pika.connect(
        rabbit_server.amqp_url_for(vhost, sender.broker_user, sender.broker_password)
    )
    try:
        yield Broker(
            await connection.channel(publisher_confirms=True),
            await as_sender.channel(publisher_confirms=True),
            sender.broker_user,
        )
    finally:
        await as_sender.close()
        await connection.close()


async def counter(agent: AgentHandle, name: str) -> int:
    status, text = await agent.get("/metrics")
    assert status == 200, text
    line = next(x for x in text.splitlines() if x.startswith(name + " "))
    return int(float(line.split()[1]))


async def wait_counter(agent: AgentHandle, name: str, wanted: int, within: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (value := await counter(agent, name)) < wanted:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} is {value}, expected {wanted} within {within}s")
        await asyncio.sleep(0.05)


async def inbox_ids(agent: AgentHandle) -> list[str]:
    status, page = await agent.get("/v1/inbox?after=0&limit=500")
    assert status == 200, page
    return [item["id"] for item in page["items"]]


def receipt_for(frames: list[bytes], forger: Forger, envelope_id: str) -> Receipt:
    receipts = [verify_receipt(f, manifest=forger.manifest, expected_from=RECIPIENT)
                for f in frames]  # fmt: skip
    return next(r for r in receipts if r.envelope_id == envelope_id)


def _flip(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x01]) + frame[index + 1 :]


TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "header byte": lambda f: _flip(f, 20),
    "ciphertext byte": lambda f: _flip(f, len(f) - 100),
    "signature byte": lambda f: _flip(f, len(f) - 1),
    "trailing byte": lambda f: f + b"\x00",
    "cut short": lambda f: f[:-1],
    "not an envelope": lambda f: b"IRL1" + b"\xff" * 80,
}


def forgeries(fed: DevFederation) -> dict[str, bytes]:
    """Envelopes claiming to come from SENDER that its certified key never signed."""
    honest = Forger.of(fed, SENDER)
    spec, minimised, _ = honest.spec_and_payloads(RECIPIENT, ISA, PURPOSE, "high")
    uncertified = dataclasses.replace(honest, signing_key=SigningKey.generate())
    impostor = dataclasses.replace(honest, signing_key=Forger.of(fed, "council-sw").signing_key)
    return {
        "signed by an uncertified key": uncertified.seal(spec, minimised),
        "signed by another agency's certified key": impostor.seal(spec, minimised),
    }


class TestTamperedEnvelope:
    async def test_is_dead_lettered_never_delivered_and_answered_with_no_receipt(
        self, isolated_federation: DevFederation, broker: Broker
    ) -> None:
        """Altered after signing, or forged: dead-lettered, not delivered, no receipt at all."""
        frame = Forger.of(isolated_federation, SENDER).honest()
        bad = [(tamper(frame), "envelope") for tamper in TAMPERINGS.values()]
        bad += [(forged, "envelope") for forged in forgeries(isolated_federation).values()]
        bad += [(frame, "receipt"), (frame, "something-else")]  # AMQP type altered
        async with running_agents(isolated_federation, RECIPIENT) as agents:
            for body, kind in bad:
                await broker.inject(RECIPIENT, body, kind)
            dead = dead_letter_queue(RECIPIENT)
            assert len(await broker.take(dead, len(bad))) == len(bad)
            assert await inbox_ids(agents[RECIPIENT]) == []
        assert await broker.depth(inbox_queue(SENDER)) == 0
        assert await broker.depth(inbox_queue(RECIPIENT)) == 0


@dataclass(frozen=True)
class Breach:
    """A validly signed envelope and the reason the recipient must give for rejecting it."""

    reason: str
    recipient: str = RECIPIENT
    isa: str = ISA
    purpose: str = PURPOSE
    risk: Risk = "high"
    unminimised: bool = False
    spec_changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    lawful_basis: dict[str, str | list[str]] = dataclasses.field(
        default_factory=dict
    )  # tags overridden


BREACHES = {
    "fields the ISA withholds at that risk level": Breach("isa_violation", unminimised=True),
    "fields allowed only at a higher risk level": Breach(
        "isa_violation", spec_changes={"risk": "standard"}
    ),
    "lawful-basis tags the ISA does not state": Breach(
        "lawful_basis_mismatch", lawful_basis={"assist.article6": "a6_1_a_consent"}
    ),
    "another text of the ISA (wrong sha256)": Breach(
        "isa_mismatch", spec_changes={"isa": IsaRef(id=ISA, version="1.0.0", sha256="0" * 64)}
    ),
    "addressed to another agency": Breach(
        "wrong_recipient",
        recipient="council-sw",
        isa="isa-police-council-concerns",
        purpose="child_and_adult_protection",
        risk="medium",
    ),
}


def forge(forger: Forger, breach: Breach) -> bytes:
    return forge_sealed(forger, breach).frame


def forge_sealed(forger: Forger, breach: Breach) -> Sealed:
    spec, minimised, full = forger.spec_and_payloads(
        breach.recipient, breach.isa, breach.purpose, breach.risk
    )
    spec = dataclasses.replace(spec, **breach.spec_changes)
    assert full != minimised or not breach.unminimised, "nothing withheld: not a breach"
    if breach.lawful_basis:
        spec = dataclasses.replace(spec, lawful_basis=spec.lawful_basis | breach.lawful_basis)
    return forger.sealed(spec, full if breach.unminimised else minimised)


class TestValidlySignedButRefusedEnvelope:
    @pytest.mark.parametrize("case", list(BREACHES), ids=list(BREACHES))
    async def test_gets_a_signed_rejection_receipt_naming_the_reason(
        self, isolated_federation: DevFederation, broker: Broker, case: str
    ) -> None:
        """The sender gets `rejected` + reason signed by the recipient; nothing is delivered."""
        forger = Forger.of(isolated_federation, SENDER)
        frame = forge(forger, BREACHES[case])
        envelope_id = peek_header(frame).id
        async with running_agents(isolated_federation, RECIPIENT) as agents:
            await broker.inject(RECIPIENT, frame)
            receipt = receipt_for(await broker.take(inbox_queue(SENDER), 1), forger, envelope_id)
            assert (receipt.status, receipt.reason) == ("rejected", BREACHES[case].reason)
            assert (receipt.issuer, receipt.to) == (RECIPIENT, SENDER)
            assert receipt.envelope_sha256 == envelope_sha256(frame)
            assert len(await broker.take(dead_letter_queue(RECIPIENT), 1)) == 1
            assert await inbox_ids(agents[RECIPIENT]) == []

    async def test_a_valid_envelope_published_by_anyone_but_its_sender_is_refused(
        self, isolated_federation: DevFederation, broker: Broker
    ) -> None:
        """A good signature relayed through the operator's connection: `transport_identity`."""
        forger = Forger.of(isolated_federation, SENDER)
        frame = forger.honest(seed=5)
        async with running_agents(isolated_federation, RECIPIENT) as agents:
            await broker.inject_as_admin(RECIPIENT, frame)
            receipt = receipt_for(
                await broker.take(inbox_queue(SENDER), 1), forger, peek_header(frame).id
            )
            assert (receipt.status, receipt.reason) == ("rejected", "transport_identity")
            assert len(await broker.take(dead_letter_queue(RECIPIENT), 1)) == 1
            assert await inbox_ids(agents[RECIPIENT]) == []

    async def test_an_expired_envelope_gets_a_rejection_receipt(
        self, isolated_federation: DevFederation, broker: Broker
    ) -> None:
        """Signed and valid when sealed, collected after its expires_at: `rejected`/`expired`."""
        forger = Forger.of(isolated_federation, SENDER)
        spec, minimised, _ = forger.spec_and_payloads(RECIPIENT, ISA, PURPOSE, "high")
        now = datetime.now(UTC).replace(microsecond=0)
        frame = forger.seal(dataclasses.replace(spec, expires_at=now + timedelta(seconds=1)),
                            minimised, now=now)  # fmt: skip
        await asyncio.sleep((now + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds())
        async with running_agents(isolated_federation, RECIPIENT) as agents:
            await broker.inject(RECIPIENT, frame)
            receipt = receipt_for(
                await broker.take(inbox_queue(SENDER), 1), forger, peek_header(frame).id
            )
            assert (receipt.status, receipt.reason) == ("rejected", "expired")
            assert await inbox_ids(agents[RECIPIENT]) == []


class TestMisbehavingSenderAgent:
    async def test_the_sender_sees_rejected_with_the_reason_on_its_message(
        self, isolated_federation: DevFederation
    ) -> None:
        """An over-sharing envelope in the sender's own outbox ends `rejected: isa_violation`."""
        forger = Forger.of(isolated_federation, SENDER)
        sealed = forge_sealed(forger, BREACHES["fields the ISA withholds at that risk level"])
        frame, header = sealed.frame, sealed.header  # the sender keeps the sealed meta
        settings = agent_settings(isolated_federation, SENDER)
        async with agent_store(settings) as store:  # as the agent opens it
            await store.enqueue_outgoing(
                message_id=header.id, client="misbehaving", idempotency_key=None,
                body_sha256="0" * 64, recipient=RECIPIENT, header=header.to_json(), frame=frame,
                now=datetime.now(UTC), expires_at=datetime.now(UTC) + timedelta(hours=1),
            )  # fmt: skip
        async with running_agents(isolated_federation, SENDER, RECIPIENT) as agents:
            body = await agents[SENDER].wait_status(header.id, {"rejected", "delivered"})
            assert body["status"] == "rejected"
            receipt = body["receipt"]
            assert (receipt["status"], receipt["reason"], receipt["verified"]) == (
                "rejected",
                "isa_violation",
                True,
            )
            assert await inbox_ids(agents[RECIPIENT]) == []


class TestReplayedEnvelope:
    async def test_reaches_the_case_system_once_even_after_a_restart(
        self, isolated_federation: DevFederation, broker: Broker
    ) -> None:
        """The same signed bytes injected 4 times (once after ack + restart): delivered once."""
        forger = Forger.of(isolated_federation, SENDER)
        frame = forger.honest()
        envelope_id = peek_header(frame).id
        async with running_agents(isolated_federation, RECIPIENT) as agents:
            recipient = agents[RECIPIENT]
            for _ in range(3):
                await broker.inject(RECIPIENT, frame)
            await wait_counter(recipient, "isa_agent_duplicates_total", 2)
            assert await inbox_ids(recipient) == [envelope_id]
            assert await counter(recipient, "isa_agent_received_total") == 1
            assert (await recipient.post(f"/v1/inbox/{envelope_id}/ack", None))[0] == 204
            assert await inbox_ids(recipient) == []  # the case system has it
            await recipient.shutdown()
            await recipient.start()
            await broker.inject(RECIPIENT, frame)
            await wait_counter(recipient, "isa_agent_duplicates_total", 1)
            assert await inbox_ids(recipient) == []  # not handed over again
            assert await counter(recipient, "isa_agent_received_total") == 0
        receipts = [verify_receipt(f, manifest=forger.manifest, expected_from=RECIPIENT)
                    for f in await broker.take(inbox_queue(SENDER), 4)]  # fmt: skip
        assert [(r.envelope_id, r.status) for r in receipts] == [(envelope_id, "delivered")] * 4
