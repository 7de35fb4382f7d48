"""Regenerate the known-answer vectors in this folder (run from the repository root).

    .venv/bin/python tests/vectors/envelope/make_vectors.py

Every input is fixed (keys from labelled SHA-256 seeds, the ephemeral secret, the nonce, the
envelope id and the clock), so the output is byte-for-byte stable;
``tests/unit/federation/test_envelope_vectors.py`` reproduces each frame and also re-derives it
independently from the spec.
Intermediate values (shared secret, derived key, header and plaintext text) are included to help
other implementations. Envelope v1 vectors keep their names (``envelope-basic``, ...) and bytes;
each has a v2 twin (``envelope-v2-basic``, ...) sealed from the same inputs. All data is
synthetic.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nacl.bindings import crypto_scalarmult, crypto_scalarmult_base

from federation.canonical import canonical_json, format_time
from federation.envelope import EnvelopeSpec, IsaRef, WireVersion, seal_with, uuid7
from federation.keys import EncryptionKey, SigningKey, announce
from federation.receipts import make_receipt

HERE = Path(__file__).parent
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RECEIPT_FOR = "019ca945-0a00-7abc-8def-0123456789ab"
ISA_SHA = hashlib.sha256(b"synthetic: true\nid: SYN-ISA-1\n").hexdigest()


def seed(label: str) -> bytes:
    return hashlib.sha256(b"isa-relay vector " + label.encode()).digest()


def kdf_key(shared: bytes, eph_public: bytes, recipient_public: bytes) -> bytes:
    data = shared + eph_public + recipient_public
    return hashlib.blake2b(data, digest_size=32, person=b"isa-relay/v1 kdf").digest()


ENVELOPES: list[dict[str, Any]] = [
    {
        "name": "envelope-basic",
        "payload": {"synthetic": True, "ref": "SYN-0001", "risk_summary": "high"},
        "risk": "high",
        "handling": ["must_not_inform:perpetrator"],
    },
    {
        "name": "envelope-unicode",
        "payload": {
            "synthetic": True,
            "ref": "SYN-0002",
            "subject": {"name": "Seònaid Nic a' Phì", "postcode": "QX1 1XX"},
            "contact": {"email": "syn.contact@example.invalid", "phone": "07700 900123"},
            "notes": ["line\nbreak", 'quote " and \\ backslash', "emoji ☂"],
            "count": 3,
            "flag": None,
        },
        "risk": "medium",
        "handling": [],
    },
]


def envelope_vector(case: dict[str, Any], version: WireVersion) -> dict[str, Any]:
    name = case["name"]  # the v2 twin draws the same seeds as v1: only the version differs
    sender = SigningKey(seed(f"{name} sender signing"))
    recipient = EncryptionKey.from_secret(seed(f"{name} recipient encryption"))
    eph_secret, nonce = seed(f"{name} eph")[:32], seed(f"{name} nonce")[:24]
    envelope_id = uuid7(NOW, seed(f"{name} id")[:10])
    spec = EnvelopeSpec(
        type="marac_referral",
        sender="syn-police",
        recipient="syn-council",
        isa=IsaRef(id="SYN-ISA-1", version="1.0.0", sha256=ISA_SHA),
        purpose="marac_referral",
        lawful_basis={"art6": "6(1)(e)", "art9": "9(2)(g)"},
        risk=case["risk"],
        handling=case["handling"],
        expires_at=NOW + timedelta(days=2),
    )
    frame = seal_with(
        case["payload"],
        spec,
        signing_key=sender,
        recipient_public=recipient.public,
        now=NOW,
        eph_secret=eph_secret,
        nonce=nonce,
        envelope_id=envelope_id,
        version=version,
    )
    eph_public = crypto_scalarmult_base(eph_secret)
    shared = crypto_scalarmult(eph_secret, recipient.public)
    hlen = int.from_bytes(frame[4:8], "big")
    meta = {
        "type": spec.type,
        "isa": spec.isa.model_dump(),
        "purpose": spec.purpose,
        "lawful_basis": spec.lawful_basis,
        "risk": spec.risk,
        "handling": spec.handling,
    }
    sealed = case["payload"] if version == 1 else {"meta": meta, "payload": case["payload"]}
    label = name if version == 1 else name.replace("envelope-", "envelope-v2-")
    return {
        "description": f"{label}: synthetic envelope v{version} known-answer vector",
        "synthetic": True,
        "inputs": {
            "version": version,
            "now": format_time(NOW),
            "sender_signing_seed": bytes(sender).hex(),
            "sender_public": bytes(sender.verify_key).hex(),
            "recipient_secret": recipient.secret_bytes().hex(),
            "recipient_public": recipient.public.hex(),
            "eph_secret": eph_secret.hex(),
            "nonce": nonce.hex(),
            "envelope_id": envelope_id,
            "spec": {
                "type": spec.type,
                "from": spec.sender,
                "to": spec.recipient,
                "isa": spec.isa.model_dump(),
                "purpose": spec.purpose,
                "lawful_basis": spec.lawful_basis,
                "risk": spec.risk,
                "handling": spec.handling,
                "expires_at": format_time(spec.expires_at),
            },
            "payload": case["payload"],
        },
        "intermediate": {
            "eph_public": eph_public.hex(),
            "shared": shared.hex(),
            "key": kdf_key(shared, eph_public, recipient.public).hex(),
            "header": frame[8 : 8 + hlen].decode("utf-8"),
            "plaintext": canonical_json(sealed).decode("utf-8"),
        },
        "expected": {
            "frame": frame.hex(),
            "envelope_sha256": hashlib.sha256(frame).hexdigest(),
        },
    }


def receipt_vector() -> dict[str, Any]:
    issuer = SigningKey(seed("receipt issuer signing"))
    frame = make_receipt(
        envelope_id=RECEIPT_FOR,
        envelope_sha256="ab" * 32,
        issuer="syn-council",
        to="syn-police",
        status="rejected",
        reason="isa_violation",
        at=NOW,
        signing_key=issuer,
    )
    return {
        "description": "receipt-rejected: synthetic signed receipt known-answer vector",
        "synthetic": True,
        "inputs": {
            "issuer_signing_seed": bytes(issuer).hex(),
            "issuer_public": bytes(issuer.verify_key).hex(),
            "envelope_id": RECEIPT_FOR,
            "envelope_sha256": "ab" * 32,
            "from": "syn-council",
            "to": "syn-police",
            "status": "rejected",
            "reason": "isa_violation",
            "at": format_time(NOW),
        },
        "expected": {"frame": frame.hex()},
    }


def announcement_vector() -> dict[str, Any]:
    agency = SigningKey(seed("announcement agency signing"))
    key = EncryptionKey.from_secret(seed("announcement encryption"))
    ann = announce(
        agency,
        agency="syn-council",
        public_key=key.public,
        not_before=NOW,
        not_after=NOW + timedelta(days=30),
    )
    return {
        "description": "announcement: synthetic signed X25519 key announcement vector",
        "synthetic": True,
        "inputs": {
            "agency_signing_seed": bytes(agency).hex(),
            "agency_public": bytes(agency.verify_key).hex(),
            "x25519_public": key.public.hex(),
            "agency": "syn-council",
            "not_before": format_time(NOW),
            "not_after": format_time(NOW + timedelta(days=30)),
        },
        "expected": {"announcement": ann.model_dump()},
    }


def all_vectors() -> dict[str, dict[str, Any]]:
    vectors: dict[str, dict[str, Any]] = {}
    for case in ENVELOPES:
        for version in (1, 2):
            vector = envelope_vector(case, version)
            vectors[vector["description"].split(":")[0]] = vector
    vectors["receipt-rejected"] = receipt_vector()
    vectors["announcement"] = announcement_vector()
    return vectors


def main() -> int:
    for name, vector in all_vectors().items():
        path = HERE / f"{name}.json"
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
