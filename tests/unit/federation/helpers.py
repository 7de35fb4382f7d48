"""A small synthetic federation for the crypto unit tests (all data synthetic; keys are fixed).

Three agencies ``syn-police``, ``syn-council`` and ``syn-refuge``, one ISA between the first two,
keys derived from fixed seeds so failures are reproducible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from federation import pki
from federation.canonical import b64url_encode, format_time
from federation.envelope import EnvelopeSpec, IsaRef
from federation.keys import EncryptionKey, KeyAnnouncement, Keyring, SigningKey, announce
from federation.manifest import (
    AgencyEntry,
    IsaEntry,
    Manifest,
    ManifestDocument,
    build_manifest,
    verify_manifest,
)

__all__ = ["NOW", "AgencyKeys", "Federation", "seed_key"]

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ISA_SHA = hashlib.sha256(b"synthetic: true\nid: SYN-ISA-1\n").hexdigest()


def seed_key(label: str) -> bytes:
    return hashlib.sha256(b"isa-relay test seed " + label.encode()).digest()


@dataclass
class AgencyKeys:
    id: str
    signing: SigningKey
    cert: x509.Certificate
    encryption: EncryptionKey
    announcement: KeyAnnouncement
    keyring: Keyring


@dataclass
class Federation:
    root_key: SigningKey = field(default_factory=lambda: SigningKey(seed_key("root")))
    signer_key: SigningKey = field(default_factory=lambda: SigningKey(seed_key("signer")))
    agencies: dict[str, AgencyKeys] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = pki.make_root(
            self.root_key,
            name="SYN Federation Root",
            not_before=NOW - timedelta(days=365),
            not_after=NOW + timedelta(days=3650),
        )
        self.pin = pki.fingerprint(self.root)
        self.signer_cert = self.issue("manifest-signer", self.signer_key.verify_key, manifest=True)
        for serial, agency in enumerate(("syn-police", "syn-council", "syn-refuge"), start=10):
            self.add_agency(agency, serial)

    def issue(
        self,
        subject: str,
        public: Any,
        *,
        manifest: bool = False,
        serial: int = 2,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        root_key: SigningKey | None = None,
    ) -> x509.Certificate:
        role = pki.CertificateRole.MANIFEST_SIGNER if manifest else pki.CertificateRole.AGENCY
        return pki.issue_certificate(
            root_key=root_key or self.root_key,
            root_cert=self.root,
            subject=subject,
            public_key=public,
            role=role,
            serial=serial,
            not_before=not_before or NOW - timedelta(days=30),
            not_after=not_after or NOW + timedelta(days=365),
        )

    def add_agency(self, agency: str, serial: int) -> None:
        signing = SigningKey(seed_key(f"{agency} signing"))
        enc = EncryptionKey.from_secret(seed_key(f"{agency} encryption"))
        ann = announce(
            signing,
            agency=agency,
            public_key=enc.public,
            not_before=NOW - timedelta(days=1),
            not_after=NOW + timedelta(days=29),
        )
        ring = Keyring()
        ring.add(enc, NOW - timedelta(days=1))
        cert = self.issue(agency, signing.verify_key, serial=serial)
        self.agencies[agency] = AgencyKeys(agency, signing, cert, enc, ann, ring)

    def entry(self, agency: str, **changes: Any) -> AgencyEntry:
        keys = self.agencies[agency]
        raw: dict[str, Any] = {
            "id": agency,
            "name": f"SYN {agency}",
            "broker_user": agency,
            "certificate": b64url_encode(pki.certificate_to_der(keys.cert)),
            "announcements": [keys.announcement],
        }
        raw.update(changes)
        return AgencyEntry(**raw)

    def isa_entry(self, **changes: Any) -> IsaEntry:
        raw: dict[str, Any] = {
            "id": "SYN-ISA-1",
            "version": "1.0.0",
            "sha256": ISA_SHA,
            "parties": ["syn-police", "syn-council"],
            "status": "active",
            "effective_from": "2026-01-01T00:00:00Z",
            "effective_to": None,
        }
        raw.update(changes)
        return IsaEntry(**raw)

    def document(self, serial: int = 5, **changes: Any) -> ManifestDocument:
        raw: dict[str, Any] = {
            "v": 1,
            "serial": serial,
            "issued_at": format_time(NOW - timedelta(hours=1)),
            "expires_at": format_time(NOW + timedelta(days=7)),
            "agencies": [self.entry(a) for a in self.agencies],
            "isas": [self.isa_entry()],
            "revocations": [],
        }
        raw.update(changes)
        return ManifestDocument(**raw)

    def manifest_file(self, document: ManifestDocument | None = None) -> bytes:
        return build_manifest(
            document or self.document(), signer_key=self.signer_key, signer_cert=self.signer_cert
        )

    def manifest(self, document: ManifestDocument | None = None) -> Manifest:
        return verify_manifest(
            self.manifest_file(document),
            root_cert=self.root,
            pinned_fingerprint=self.pin,
            now=NOW,
            current_serial=0,
        )

    def spec(
        self, sender: str = "syn-police", recipient: str = "syn-council", **changes: Any
    ) -> EnvelopeSpec:
        raw: dict[str, Any] = {
            "type": "marac_referral",
            "sender": sender,
            "recipient": recipient,
            "isa": IsaRef(id="SYN-ISA-1", version="1.0.0", sha256=ISA_SHA),
            "purpose": "marac_referral",
            "lawful_basis": {"art6": "6(1)(e)", "art9": "9(2)(g)"},
            "risk": "high",
            "handling": ["must_not_inform:perpetrator"],
            "expires_at": NOW + timedelta(days=2),
        }
        raw.update(changes)
        return EnvelopeSpec(**raw)
