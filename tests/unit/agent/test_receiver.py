"""The agent's receive path around ``federation.receive``: whom a refused envelope is answered.

Runs the real ``Receiver`` wired by ``agent.runtime.open_agent`` over a dev federation; the
transport attached to its publisher only collects what would be published (the transport itself
is tested on RabbitMQ).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_settings
from agent.runtime import Agent, open_agent
from agent.transport import Delivery, Outcome
from broker.devfed import DevFederation, create_dev_federation
from federation.envelope import EnvelopeSpec, IsaRef, seal
from federation.pipeline import expected_lawful_basis

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
    isa = police.registry.get(ISA_ID)
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
