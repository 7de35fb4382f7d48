"""Fakes and a small federation for the unit tests of the agent's parts (all data synthetic).

Rules:
1. Fakes keep the promises of what they stand for: :class:`RecordingPublisher` is a connected
   ``agent.publisher.Publisher`` that keeps what it was asked to publish, or raises
   ``TransportError`` like the transport; :class:`ListAudit` is an ``AuditSink`` that keeps
   each event with what the store held when it was recorded; the store is
   ``tests.support.memory_store.MemoryStore`` (held to the store's contract suite).
2. One clock for building and judging: :data:`NOW` (``tests.unit.federation.helpers``), never the
   date the suite runs.
3. ``assist`` sends MARAC referrals to ``marac-coordinator`` under the shipped MARAC ISA; their
   keys are fixed (``Federation``), so every frame is reproducible but for its nonce.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.actor import Actor, Caller
from agent.api_models import SubmitRequest
from agent.audit import AuditEvent, RepeatAudit
from agent.errors import TransportError
from agent.keyrotation import KeyringHolder
from agent.metrics import Metrics
from agent.publisher import Publisher
from agent.receiver import Receiver
from agent.relay import OutboxRelay
from agent.service import Service
from agent.transport import Delivery
from federation.envelope import seal
from federation.isa import Isa, IsaRegistry, load_isa
from federation.keys import Keyring
from federation.manifest import IsaEntry, Manifest, TrustState
from federation.pipeline import prepare
from federation.synth import generate_referral
from tests.support.memory_store import MemoryStore
from tests.unit.federation.helpers import NOW, Federation

#: The case system calling the service in these tests, and the (synthetic) person it names.
CALLER = Caller("case-system", Actor("SYN-STAFF-0001", "case_worker", "SYNTHETIC unit test"))

__all__ = [
    "CALLER",
    "ISA",
    "MANIFEST",
    "NOW",
    "RECIPIENT",
    "SENDER",
    "FixedTrust",
    "ListAudit",
    "Observer",
    "Published",
    "RecordingPublisher",
    "delivery",
    "queued",
    "receiver",
    "refused_frame",
    "relay",
    "request",
    "sealed_frame",
    "service",
]

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SENDER, RECIPIENT = "assist", "marac-coordinator"
PURPOSE, KIND = "marac_risk_management", "marac_referral"
_PATH = POLICIES / "marac-referrals.yaml"
ISA: Isa = load_isa(str(_PATH), _PATH.read_bytes())
FED = Federation()
FED.add_agency(SENDER, 20)
FED.add_agency(RECIPIENT, 21)
_ENTRY = IsaEntry(
    id=ISA.id,
    version=ISA.version,
    sha256=ISA.sha256,
    parties=[SENDER, RECIPIENT],
    status="active",
    effective_from="2026-01-01T00:00:00Z",
    effective_to=None,
)
MANIFEST: Manifest = FED.manifest(FED.document(isas=[_ENTRY]))


Observer = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Published:
    """One publish the publisher was asked for, with what ``observe`` saw at that moment."""

    to: str
    kind: str
    message_id: str
    frame: bytes
    observed: object = None


@dataclass
class RecordingPublisher:
    """A connected publisher that keeps what it publishes; ``fail`` makes it raise instead."""

    fail: TransportError | None = None
    observe: Observer | None = None
    connected: bool = True
    consuming: bool = True
    published: list[Published] = field(default_factory=list)

    async def publish(self, recipient: str, body: bytes, /, *, message_id: str, kind: str) -> None:
        if self.fail is not None:
            raise self.fail
        seen = None if self.observe is None else await self.observe()
        self.published.append(Published(recipient, kind, message_id, body, seen))


@dataclass
class ListAudit:
    """An audit sink keeping (event, at, what ``observe`` saw when it was recorded)."""

    observe: Observer | None = None
    entries: list[tuple[AuditEvent, datetime, object]] = field(default_factory=list)

    async def record(self, event: AuditEvent, at: datetime) -> None:
        seen = None if self.observe is None else await self.observe()
        self.entries.append((event, at, seen))

    def actions(self) -> list[str]:
        return [event.action for event, _, _ in self.entries]


@dataclass(frozen=True)
class FixedTrust:
    """Trust in one manifest (``agent.trust.Trust``) and the ISAs in force with it."""

    state: TrustState = field(default_factory=lambda: TrustState(MANIFEST))
    last_error: str | None = None
    registry: IsaRegistry = field(default_factory=lambda: IsaRegistry([ISA]))

    def isas(self, now: datetime) -> IsaRegistry:
        return self.registry

    async def catch_up(self, held: int) -> bool:
        """No source to fetch: never newer."""
        return False

    @property
    def manifest(self) -> Manifest | None:
        return self.state.manifest

    def manifest_alert(self, now: datetime) -> str | None:
        """No expiry warning: the fixed manifest is judged valid by the tests that use it."""
        return None

    def expiry_gauges(self, agency: str, isas: IsaRegistry, now: datetime) -> dict[str, float]:
        return {}


def request(**changes: Any) -> SubmitRequest:
    """A high-risk synthetic MARAC referral from assist to the MARAC coordinator."""
    payload = generate_referral(KIND, random.Random(3), risk_level="high")
    body = {"to": RECIPIENT, "isa": ISA.id, "purpose": PURPOSE, "type": KIND, "payload": payload}
    return SubmitRequest.model_validate(body | changes)


def service(
    store: MemoryStore,
    audit: ListAudit,
    *,
    publisher: Publisher | None = None,
    trust: FixedTrust | None = None,
    wake: asyncio.Event | None = None,
) -> Service:
    """assist's service over fakes, at :data:`NOW`."""
    sender = FED.agencies[SENDER]
    return Service(
        agency=SENDER, store=store, audit=audit, repeats=RepeatAudit(audit),
        trust=trust or FixedTrust(),
        keys=KeyringHolder(sender.keyring, lambda: sender.keyring),
        signing_key=sender.signing, publisher=publisher or RecordingPublisher(),
        clock=lambda: NOW, metrics=Metrics(), wake_relay=(wake or asyncio.Event()).set,
        ttl=timedelta(hours=1), send_version=2, max_ciphertext=1024 * 1024,
    )  # fmt: skip


def relay(
    store: MemoryStore, publisher: Publisher, audit: ListAudit, clock: Callable[[], datetime]
) -> OutboxRelay:
    return OutboxRelay(
        store=store, publisher=publisher, audit=audit, clock=clock, metrics=Metrics(),
        wakeup=asyncio.Event(),
    )  # fmt: skip


def receiver(
    store: MemoryStore,
    publisher: Publisher,
    audit: ListAudit,
    *,
    keyring: Keyring | None = None,
    load: Callable[[], Keyring] | None = None,
) -> Receiver:
    """The MARAC coordinator's receiver over fakes, at :data:`NOW`; ``keyring`` is the one it
    holds first, ``load`` what re-reading it from disk returns."""
    mine = FED.agencies[RECIPIENT]
    return Receiver(
        agency=RECIPIENT, store=store, audit=audit, repeats=RepeatAudit(audit),
        trust=FixedTrust(),
        keys=KeyringHolder(mine.keyring if keyring is None else keyring,
                           load or (lambda: mine.keyring)),
        signing_key=mine.signing, publisher=publisher, clock=lambda: NOW, metrics=Metrics(),
        on_stored=lambda: None, max_skew=timedelta(minutes=5), max_ciphertext=1024 * 1024,
    )  # fmt: skip


async def queued(store: MemoryStore) -> str:
    """The id of a referral assist's real service sealed and queued in ``store``."""
    return (await service(store, ListAudit()).submit(CALLER, request())).id


async def sealed_frame() -> tuple[str, bytes]:
    """(id, frame) of a referral assist's real service sealed for the MARAC coordinator."""
    store = MemoryStore()
    message_id = await queued(store)
    [due] = await store.due_outgoing(NOW, 10)
    return message_id, due.frame


def refused_frame(**extra: Any) -> bytes:
    """A frame assist really signed for the MARAC coordinator whose payload carries ``extra``
    fields its schema does not have: authenticated, so its refusal is answered."""
    prepared = prepare(
        ISA, sender=SENDER, recipient=RECIPIENT, purpose=PURPOSE, message_type=KIND,
        payload=request().payload, now=NOW, ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prepared.spec is not None
    return seal(
        prepared.payload | extra, prepared.spec, signing_key=FED.agencies[SENDER].signing,
        recipient_public=FED.agencies[RECIPIENT].encryption.public, now=NOW,
    )  # fmt: skip


def delivery(frame: bytes, message_id: str = "m-1", user_id: str = SENDER) -> Delivery:
    return Delivery(body=frame, message_id=message_id, kind="envelope", user_id=user_id,
                    redelivered=False, delivery_count=0)  # fmt: skip
