"""The agent's receive path around ``federation.receive``: store then answer, whom a refused
envelope is answered, the keyring re-read once for an unknown key.

``TestEnvelopes`` runs the ``Receiver`` over fakes (``tests.unit.agent.fakes``: the memory
store, a recording publisher, a list audit sink, a fixed clock); ``TestRefusedEnvelopes`` runs
the one ``agent.runtime.open_agent`` wires over a dev federation, with a transport attached to
its publisher that only collects what would be published (the transport itself is tested on
RabbitMQ).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.publisher import LatePublisher
from agent.runtime import Agent, open_agent
from agent.transport import Delivery, Outcome
from broker.devfed import DevFederation, create_dev_federation
from federation.envelope import EnvelopeSpec, IsaRef, seal
from federation.keys import Keyring
from federation.pipeline import expected_lawful_basis
from federation.receipts import Receipt, verify_receipt
from tests.support.memory_store import MemoryStore
from tests.unit.agent import fakes
from tests.unit.agent.fakes import ListAudit, Published, RecordingPublisher

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SENDER, RECIPIENT = "police-scotland", "assist"
ISA_ID, PURPOSE = "isa-police-assist-advocacy", "advocacy_after_charge"
LIMIT = 4 * 1024 * 1024  # a ciphertext limit above the protocol's 1 MiB default


class FakeTransport:
    """Collects the receipts the receiver publishes."""

    consuming = connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, str, str]] = []

    async def publish(self, to: str, frame: bytes, *, message_id: str, kind: str) -> None:
        self.published.append((to, kind, message_id))


@pytest.fixture
def fed(tmp_path: Path) -> DevFederation:
    return create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW,
        agencies=[SENDER, RECIPIENT], vhost="syn-unit-never-provisioned",
    )  # fmt: skip


@pytest.fixture
async def contexts(fed: DevFederation) -> AsyncIterator[tuple[Agent, Agent, FakeTransport]]:
    async with AsyncExitStack() as stack:
        opened = []
        for agency in (SENDER, RECIPIENT):
            settings = load_settings(fed.agency(agency).config, {})
            limits = settings.limits.model_copy(update={"max_ciphertext_bytes": LIMIT})
            settings = settings.model_copy(update={"limits": limits})
            context = open_agent(settings, clock=lambda: NOW)
            opened.append(await stack.enter_async_context(context))
        police, assist = opened
        transport = FakeTransport()
        stack.enter_context(assist.publisher.attached(transport))
        yield police, assist, transport


def _large_invalid_frame(police: Agent) -> bytes:
    """A frame signed by police-scotland for assist under their ISA, with a ciphertext over
    1 MiB, whose payload fails its schema (step 10): authenticated, so it must be answered."""
    isa = police.trust.isas(NOW).get(ISA_ID)
    assert isa is not None
    manifest = police.trust.manifest
    assert manifest is not None
    key = manifest.current_encryption_key(RECIPIENT, NOW)
    assert key is not None
    spec = EnvelopeSpec(
        type="police_concern", sender=SENDER, recipient=RECIPIENT,
        isa=IsaRef(id=isa.id, version=isa.version, sha256=isa.sha256), purpose=PURPOSE,
        lawful_basis=expected_lawful_basis(isa, PURPOSE, SENDER, RECIPIENT), risk="high",
        handling=[], expires_at=NOW + timedelta(hours=1),
    )  # fmt: skip
    return seal(
        {"notes": "x" * (1536 * 1024)}, spec, signing_key=police.signing_key,
        recipient_public=key.public_bytes(), now=NOW,
    )  # fmt: skip


class TestRefusedEnvelopes:
    async def test_rejected_envelope_over_one_mebibyte_is_answered_with_a_receipt(
        self, contexts: tuple[Agent, Agent, FakeTransport]
    ) -> None:
        """Under a ciphertext limit above 1 MiB, an authenticated frame that large and refused
        gets its signed rejected receipt (the agent re-parsed it under the 1 MiB default and
        answered nobody: the sender's message expired undelivered instead)."""
        police, assist, transport = contexts
        frame = _large_invalid_frame(police)
        assert len(frame) > 1024 * 1024
        delivery = Delivery(body=frame, message_id="m-large", kind="envelope", user_id=SENDER,
                            redelivered=False, delivery_count=0)  # fmt: skip
        outcome = await assist.receiver()(delivery)
        assert outcome is Outcome.REJECT
        assert [(to, kind) for to, kind, _ in transport.published] == [(SENDER, "receipt")]


def _receipt(published: Published) -> Receipt:
    return verify_receipt(published.frame, manifest=fakes.MANIFEST)


def _inbox_size(store: MemoryStore) -> fakes.Observer:
    async def size() -> object:
        return len(await store.inbox_page(0, 100))

    return size


class TestEnvelopes:
    async def test_envelope_is_stored_then_answered_with_a_delivered_receipt(self) -> None:
        """A valid envelope is in the inbox before its signed delivered receipt goes out."""
        message_id, frame = await fakes.sealed_frame()
        store = MemoryStore()
        publisher = RecordingPublisher(observe=_inbox_size(store))
        outcome = await fakes.receiver(store, publisher, ListAudit())(fakes.delivery(frame))
        [sent] = publisher.published
        receipt = _receipt(sent)
        assert outcome is Outcome.ACK
        stored_when_sent = 1
        assert (sent.to, sent.kind, sent.message_id) == (fakes.SENDER, "receipt", message_id)
        assert sent.observed == stored_when_sent
        assert (receipt.envelope_id, receipt.status) == (message_id, "delivered")
        assert [item.id for item in await store.inbox_page(0, 10)] == [message_id]

    async def test_frame_changed_in_transit_is_dead_lettered_unanswered(self) -> None:
        """A flipped byte fails the signature: nothing stored, no receipt to an unproven sender,
        the refusal audited."""
        _, frame = await fakes.sealed_frame()
        tampered = frame[:-100] + bytes([frame[-100] ^ 1]) + frame[-99:]
        store, publisher, audit = MemoryStore(), RecordingPublisher(), ListAudit()
        outcome = await fakes.receiver(store, publisher, audit)(fakes.delivery(tampered))
        assert (outcome, publisher.published) == (Outcome.REJECT, [])
        assert await store.inbox_page(0, 10) == []
        assert [(e.action, e.outcome) for e, _, _ in audit.entries] == [("reject", "bad_signature")]

    async def test_authenticated_refused_envelope_gets_a_rejected_receipt(self) -> None:
        """A signed frame whose payload breaks its schema is answered with its reason code."""
        store, publisher = MemoryStore(), RecordingPublisher()
        frame = fakes.refused_frame(shoe_size=9)
        outcome = await fakes.receiver(store, publisher, ListAudit())(fakes.delivery(frame))
        [sent] = publisher.published
        receipt = _receipt(sent)
        assert outcome is Outcome.REJECT
        assert (sent.to, receipt.status, receipt.reason) == (
            fakes.SENDER,
            "rejected",
            "payload_invalid",
        )
        assert await store.inbox_page(0, 10) == []

    async def test_unknown_key_is_found_by_re_reading_the_keyring(self) -> None:
        """An envelope sealed to a key the holder lacks is accepted once the re-read keyring
        has it, and the holder keeps the re-read keyring."""
        _, frame = await fakes.sealed_frame()
        on_disk = fakes.FED.agencies[fakes.RECIPIENT].keyring
        store, publisher = MemoryStore(), RecordingPublisher()
        receiver = fakes.receiver(
            store, publisher, ListAudit(), keyring=Keyring(), load=lambda: on_disk
        )
        assert await receiver(fakes.delivery(frame)) is Outcome.ACK
        assert receiver.keys.current is on_disk

    async def test_unknown_key_still_unknown_after_one_reload_is_rejected(self) -> None:
        """The keyring is re-read once per envelope; a key still unknown is refused, answered."""
        _, frame = await fakes.sealed_frame()
        reads: list[Keyring] = []

        def load() -> Keyring:
            reads.append(Keyring())
            return reads[-1]

        publisher = RecordingPublisher()
        receiver = fakes.receiver(
            MemoryStore(), publisher, ListAudit(), keyring=Keyring(), load=load
        )
        assert await receiver(fakes.delivery(frame)) is Outcome.REJECT
        assert [_receipt(p).reason for p in publisher.published] == ["key_unknown"]
        assert len(reads) == 1

    async def test_receipt_that_cannot_be_sent_requeues_the_stored_envelope(self) -> None:
        """With the broker session gone the envelope stays stored and is requeued, not acked."""
        _, frame = await fakes.sealed_frame()
        store = MemoryStore()
        receiver = fakes.receiver(store, LatePublisher(), ListAudit())
        assert await receiver(fakes.delivery(frame)) is Outcome.REQUEUE
        assert len(await store.inbox_page(0, 10)) == 1
