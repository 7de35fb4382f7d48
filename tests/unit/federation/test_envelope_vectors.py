"""Known-answer vectors (tests/vectors/envelope/) are reproduced byte for byte, and re-derived."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)
from nacl.signing import VerifyKey

from federation.canonical import canonical_json, parse_time
from federation.envelope import EnvelopeSpec, IsaRef, seal_with
from federation.keys import SigningKey, announce
from federation.receipts import make_receipt

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "envelope"
ENVELOPES = sorted(VECTORS.glob("envelope-*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def spec_of(raw: dict[str, Any]) -> EnvelopeSpec:
    return EnvelopeSpec(
        type=raw["type"],
        sender=raw["from"],
        recipient=raw["to"],
        isa=IsaRef(**raw["isa"]),
        purpose=raw["purpose"],
        lawful_basis=raw["lawful_basis"],
        risk=raw["risk"],
        handling=raw["handling"],
        expires_at=parse_time(raw["expires_at"]),
    )


ROUTING_FIELDS = {
    "v", "id", "from", "to", "created_at", "expires_at", "sender_key", "recipient_key", "eph",
    "nonce",
}  # fmt: skip
MAGICS = {1: b"IRL1", 2: b"IRL2"}


def test_there_are_envelope_vectors() -> None:
    """The vector folder holds two v1 and two v2 envelope vectors (a missing one must fail)."""
    versions = sorted(load(path)["inputs"]["version"] for path in ENVELOPES)
    assert versions == [1, 1, 2, 2]


def sealed_plaintext(inputs: dict[str, Any]) -> bytes:
    """What docs/protocol.md section 5 says is encrypted: v1 the payload; v2 {meta, payload}."""
    if inputs["version"] == 1:
        return canonical_json(inputs["payload"])
    spec = inputs["spec"]
    meta = {k: spec[k] for k in ("type", "isa", "purpose", "lawful_basis", "risk", "handling")}
    return canonical_json({"meta": meta, "payload": inputs["payload"]})


def cleartext_fields(inputs: dict[str, Any]) -> set[str]:
    """v1 shows the routing and every meta field in clear; v2 only the routing."""
    meta = {"type", "isa", "purpose", "lawful_basis", "risk", "handling"}
    return ROUTING_FIELDS | meta if inputs["version"] == 1 else ROUTING_FIELDS


@pytest.mark.parametrize("path", ENVELOPES, ids=lambda p: p.stem)
class TestEnvelopeVectors:
    def test_seal_with_reproduces_the_frame_byte_for_byte(self, path: Path) -> None:
        """seal_with on the vector's fixed inputs gives exactly the expected frame."""
        v = load(path)
        i = v["inputs"]
        frame = seal_with(
            i["payload"],
            spec_of(i["spec"]),
            signing_key=SigningKey(bytes.fromhex(i["sender_signing_seed"])),
            recipient_public=bytes.fromhex(i["recipient_public"]),
            now=parse_time(i["now"]),
            eph_secret=bytes.fromhex(i["eph_secret"]),
            nonce=bytes.fromhex(i["nonce"]),
            envelope_id=i["envelope_id"],
            version=i["version"],
        )
        assert frame.hex() == v["expected"]["frame"]
        assert hashlib.sha256(frame).hexdigest() == v["expected"]["envelope_sha256"]

    def test_frame_re_derives_from_the_spec_alone(self, path: Path) -> None:
        """An independent reading of docs/protocol.md verifies and decrypts the frame."""
        v = load(path)
        i, mid = v["inputs"], v["intermediate"]
        frame = bytes.fromhex(v["expected"]["frame"])
        assert frame[:4] == MAGICS[i["version"]]
        (hlen,) = struct.unpack(">I", frame[4:8])
        header = frame[8 : 8 + hlen]
        (clen,) = struct.unpack(">I", frame[8 + hlen : 12 + hlen])
        ct, sig = frame[12 + hlen : 12 + hlen + clen], frame[12 + hlen + clen :]
        assert len(sig) == 64
        assert header.decode("utf-8") == mid["header"]
        assert canonical_json(json.loads(header)) == header
        assert set(json.loads(header)) == cleartext_fields(i)
        assert json.loads(header)["v"] == i["version"]
        VerifyKey(bytes.fromhex(i["sender_public"])).verify(
            b"isa-relay/v1 envelope\x00" + frame[:-64], sig
        )
        eph_secret, recipient_public = (
            bytes.fromhex(i["eph_secret"]),
            bytes.fromhex(i["recipient_public"]),
        )
        eph_public = crypto_scalarmult_base(eph_secret)
        shared = crypto_scalarmult(bytes.fromhex(i["recipient_secret"]), eph_public)
        key = hashlib.blake2b(
            shared + eph_public + recipient_public, digest_size=32, person=b"isa-relay/v1 kdf"
        ).digest()
        assert (eph_public.hex(), shared.hex(), key.hex()) == (
            mid["eph_public"],
            mid["shared"],
            mid["key"],
        )
        plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct, header, bytes.fromhex(i["nonce"]), key
        )
        assert plaintext == sealed_plaintext(i) == mid["plaintext"].encode("utf-8")


class TestOtherVectors:
    def test_receipt_vector_is_reproduced(self) -> None:
        """make_receipt on the fixed inputs gives exactly the expected receipt frame."""
        v = load(VECTORS / "receipt-rejected.json")
        i = v["inputs"]
        frame = make_receipt(
            envelope_id=i["envelope_id"],
            envelope_sha256=i["envelope_sha256"],
            issuer=i["from"],
            to=i["to"],
            status=i["status"],
            reason=i["reason"],
            at=parse_time(i["at"]),
            signing_key=SigningKey(bytes.fromhex(i["issuer_signing_seed"])),
        )
        assert frame.hex() == v["expected"]["frame"]

    def test_announcement_vector_is_reproduced(self) -> None:
        """announce on the fixed inputs gives exactly the expected signed announcement."""
        v = load(VECTORS / "announcement.json")
        i = v["inputs"]
        ann = announce(
            SigningKey(bytes.fromhex(i["agency_signing_seed"])),
            agency=i["agency"],
            public_key=bytes.fromhex(i["x25519_public"]),
            not_before=parse_time(i["not_before"]),
            not_after=parse_time(i["not_after"]),
        )
        assert ann.model_dump() == v["expected"]["announcement"]
