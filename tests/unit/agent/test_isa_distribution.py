"""The agent takes its ISAs from the manifest it holds (issue 15.5): a new version is applied
with the manifest that brings it, without a restart; a manifest whose ISA document does not match
its pin is refused, audited once and the held one kept; a receiver meeting a version its manifest
does not list fetches the manifest once before refusing.

Every manifest is built and judged at a fixed time (``NOW`` of the broker_agency fixtures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agent.audit import ManifestAuditor, RepeatAudit
from agent.config import TrustSettings
from agent.keyrotation import KeyringHolder
from agent.metrics import Metrics
from agent.receiver import Receiver
from agent.transport import Outcome
from agent.trust import TrustHolder
from broker.fedstate import FederationLayout, publish_manifest, read_private
from federation import pki
from federation.canonical import b64url_decode, b64url_encode
from federation.envelope import seal
from federation.isa import Isa, IsaRegistry, load_isa
from federation.manifest import Manifest, TrustState, build_manifest, unverified_document
from federation.pipeline import prepare
from federation.receipts import verify_receipt
from tests.support.memory_store import MemoryStore
from tests.unit.agent.fakes import (
    FED,
    ISA,
    KIND,
    MANIFEST,
    PURPOSE,
    RECIPIENT,
    SENDER,
    ListAudit,
    RecordingPublisher,
    delivery,
    request,
)
from tests.unit.agent.fakes import NOW as FAKES_NOW
from tests.unit.broker.conftest import NOW, _template, layout

__all__ = ["_template", "layout"]  # the fixtures this module uses

ISA_ID, FILE = "isa-police-assist-advocacy", "police-to-assist.yaml"
SOON = NOW + timedelta(minutes=1)


def holder(
    layout: FederationLayout,
    tmp_path: Path,
    local: IsaRegistry | None = None,
    clock: Callable[[], datetime] = lambda: SOON,
) -> TrustHolder:
    """An agent's trust on the federation's manifest file, without a policies_dir."""
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    settings = TrustSettings(root_certificate=layout.root_cert,
                             root_fingerprint=pki.fingerprint(root),
                             manifest_file=layout.manifest)  # fmt: skip
    return TrustHolder(settings, tmp_path / "data", local_isas=local, clock=clock)


def publish_version(layout: FederationLayout, version: str, at: datetime) -> None:
    """The operator's step: a new version of the ISA in policies/, then ``manifest build``."""
    path = layout.policies / FILE
    text = path.read_bytes()
    current = load_isa(FILE, text).version.encode()
    path.write_bytes(text.replace(b"version: " + current, b"version: " + version.encode(), 1))
    publish_manifest(layout, at)


def version_in_force(trust: TrustHolder, at: datetime) -> str | None:
    isa = trust.isas(at).get(ISA_ID)
    return None if isa is None else isa.version


def tampered_next_serial(layout: FederationLayout) -> bytes:
    """The next serial, properly signed, whose ISA document had one byte changed."""
    doc = unverified_document(layout.manifest.read_bytes())
    isas = []
    for entry in doc.isas:
        if entry.id == ISA_ID and entry.document is not None:
            text = b64url_decode(entry.document).replace(b"advocacy", b"advocacz", 1)
            entry = entry.model_copy(update={"document": b64url_encode(text)})
        isas.append(entry)
    forged = doc.model_copy(update={"serial": doc.serial + 1, "isas": isas})
    return build_manifest(
        forged, signer_key=read_private(layout.signer_key),
        signer_cert=pki.certificate_from_bytes(layout.signer_cert.read_bytes()),
    )  # fmt: skip


class TestIsasFromTheManifest:
    def test_the_isas_in_force_are_the_ones_the_manifest_carries(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """No policies_dir: after serial 1 the agent has the shipped ISAs, version 1.0.0."""
        trust = holder(layout, tmp_path)
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        assert version_in_force(trust, SOON) == "1.0.0"
        assert len(trust.isas(SOON)) == 5

    def test_a_new_version_is_applied_with_the_next_manifest_without_a_restart(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The same holder takes serial 2 carrying 1.1.0: 1.0.0 governs until the switch,
        1.1.0 from it, and 1.0.0's text is still held for messages sealed before."""
        trust = holder(layout, tmp_path)
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        publish_version(layout, "1.1.0", SOON)
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        switch = SOON + timedelta(minutes=15)
        assert version_in_force(trust, switch - timedelta(seconds=1)) == "1.0.0"
        assert version_in_force(trust, switch) == "1.1.0"
        old = load_isa("v1", (layout.root / "isas" / ISA_ID / "1.0.0.yaml").read_bytes())
        assert trust.isas(switch).version(ISA_ID, old.sha256) is not None

    def test_a_format_1_manifest_leaves_the_local_files_in_force(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Format 1 carries no ISAs: the agent uses what it read from policies_dir."""
        publish_manifest(layout, SOON, manifest_format=1)
        local = IsaRegistry([load_isa(FILE, (layout.policies / FILE).read_bytes())])
        trust = holder(layout, tmp_path, local)
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        assert trust.isas(SOON) is local


class TestTamperedDocument:
    async def test_a_manifest_whose_isa_does_not_match_its_pin_is_refused_and_audited(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """Serial 2 with one byte of an ISA changed (and re-signed): refused with
        isa_document_mismatch; serial 1 and its ISAs stay; one audit entry, even when the same
        bytes are offered again at the next poll."""
        trust = holder(layout, tmp_path)
        audit = ListAudit()
        auditor = ManifestAuditor(audit, lambda: SOON)
        trust.on_refused(auditor.refused)
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        forged = tampered_next_serial(layout)
        assert not trust.offer(forged, SOON)
        assert not trust.offer(forged, SOON + timedelta(minutes=1))
        await auditor.drain()
        assert trust.manifest is not None
        assert trust.manifest.serial == 1
        assert version_in_force(trust, SOON) == "1.0.0"
        assert "isa_document_mismatch" in (trust.last_error or "")
        [(event, _, _)] = audit.entries
        assert (event.action, event.outcome) == ("manifest_change", "refused")
        assert "isa_document_mismatch" in event.detail
        assert f"ISA {ISA_ID} 1.0.0" in event.detail
        assert "serial 1 stays in force" in event.detail


class TestCatchUp:
    async def test_catch_up_fetches_the_source_once_and_applies_a_newer_serial(
        self, layout: FederationLayout, tmp_path: Path
    ) -> None:
        """The file holds serial 2: catch_up(1) applies it; asked again at once it does not
        fetch (serial 3 waits for the poll); ten seconds on it fetches again."""
        clock = [SOON]
        trust = holder(layout, tmp_path, clock=lambda: clock[0])
        assert trust.offer(layout.manifest.read_bytes(), SOON)
        publish_manifest(layout, SOON)
        assert await trust.catch_up(1)
        publish_manifest(layout, SOON)
        assert not await trust.catch_up(2)
        assert trust.manifest is not None
        assert trust.manifest.serial == 2
        clock[0] = SOON + timedelta(seconds=10)
        assert await trust.catch_up(2)
        assert trust.manifest.serial == 3


# -- the receiver, over fakes (assist sends MARAC referrals to the MARAC coordinator) ----------


@dataclass
class BehindTrust:
    """Trust holding MANIFEST (the MARAC ISA at 1.0.0) until ``catch_up`` finds ``newer``."""

    newer: tuple[Manifest, IsaRegistry] | None = None
    state: TrustState = field(default_factory=lambda: TrustState(MANIFEST))
    registry: IsaRegistry = field(default_factory=lambda: IsaRegistry([ISA]))
    last_error: str | None = None
    fetches: int = 0

    @property
    def manifest(self) -> Manifest | None:
        return self.state.manifest

    def manifest_alert(self, now: datetime) -> str | None:
        return None

    def expiry_gauges(self, agency: str, isas: IsaRegistry, now: datetime) -> dict[str, float]:
        return {}

    def isas(self, now: datetime) -> IsaRegistry:
        return self.registry

    async def catch_up(self, held: int) -> bool:
        self.fetches += 1
        if self.newer is None:
            return False
        manifest, self.registry = self.newer
        self.state = TrustState(manifest)
        return True


def _newer_isa_frame() -> tuple[bytes, Isa]:
    """A referral assist sealed under MARAC ISA "1.1.0" (its text otherwise 1.0.0's), and the
    ISA the coordinator needs to judge it."""
    data = Path(ISA.source).read_bytes().replace(b"version: 1.0.0", b"version: 1.1.0", 1)
    newer = load_isa("marac-1.1.0", data)
    prepared = prepare(
        newer, sender=SENDER, recipient=RECIPIENT, purpose=PURPOSE, message_type=KIND,
        payload=request().payload, now=FAKES_NOW, ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prepared.spec is not None
    frame = seal(
        prepared.payload, prepared.spec, signing_key=FED.agencies[SENDER].signing,
        recipient_public=FED.agencies[RECIPIENT].encryption.public, now=FAKES_NOW,
    )  # fmt: skip
    return frame, newer


def _receiver(trust: BehindTrust, publisher: RecordingPublisher, audit: ListAudit) -> Receiver:
    mine = FED.agencies[RECIPIENT]
    return Receiver(
        agency=RECIPIENT, store=MemoryStore(), audit=audit, repeats=RepeatAudit(audit),
        trust=trust, keys=KeyringHolder(mine.keyring, lambda: mine.keyring),
        signing_key=mine.signing, publisher=publisher, clock=lambda: FAKES_NOW,
        metrics=Metrics(), on_stored=lambda: None, max_skew=timedelta(minutes=5),
        max_ciphertext=1024 * 1024,
    )  # fmt: skip


class TestReceiverBehindTheSender:
    async def test_a_newer_version_is_accepted_once_the_manifest_is_fetched(self) -> None:
        """The coordinator's manifest lists 1.0.0; the frame cites 1.1.0: one fetch brings the
        manifest listing it, and the referral is delivered."""
        frame, newer = _newer_isa_frame()
        entry = MANIFEST.document.isas[0].model_copy(
            update={"version": "1.1.0", "sha256": newer.sha256}
        )
        fresh = FED.manifest(FED.document(serial=6, isas=[entry]))
        trust = BehindTrust(newer=(fresh, IsaRegistry([newer])))
        publisher, audit = RecordingPublisher(), ListAudit()
        outcome = await _receiver(trust, publisher, audit)(delivery(frame))
        assert outcome is Outcome.ACK
        assert trust.fetches == 1
        [sent] = publisher.published
        assert verify_receipt(sent.frame, manifest=fresh).status == "delivered"

    async def test_a_version_no_fetch_brings_is_refused_with_its_named_reason(self) -> None:
        """Nothing newer to fetch: the frame is rejected with isa_version_unknown, audited and
        answered with that reason (the sender sees why), never silently dropped."""
        frame, _newer = _newer_isa_frame()
        trust = BehindTrust()
        publisher, audit = RecordingPublisher(), ListAudit()
        outcome = await _receiver(trust, publisher, audit)(delivery(frame))
        assert outcome is Outcome.REJECT
        assert trust.fetches == 1
        [sent] = publisher.published
        receipt = verify_receipt(sent.frame, manifest=MANIFEST)
        assert (receipt.status, receipt.reason) == ("rejected", "isa_version_unknown")
        [(event, _, _)] = audit.entries
        assert (event.action, event.outcome) == ("reject", "isa_version_unknown")
