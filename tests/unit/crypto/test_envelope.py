"""Envelope v1: sealing and the receiver's ordered checks, each refusal with its reason code."""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.canonical import b64url_encode, canonical_json
from federation.envelope import (
    ENVELOPE_TAG,
    MAGIC,
    Opened,
    envelope_sha256,
    open_envelope,
    peek_header,
    seal,
    uuid7,
)
from federation.errors import CryptoError, EnvelopeRejected
from federation.keys import EncryptionKey
from federation.manifest import Manifest, Revocation
from tests.unit.crypto.helpers import NOW, Federation

FED = Federation()
MANIFEST = FED.manifest()
POLICE = FED.agencies["syn-police"]
COUNCIL = FED.agencies["syn-council"]
REFUGE = FED.agencies["syn-refuge"]
PAYLOAD: dict[str, Any] = {"synthetic": True, "ref": "SYN-0001", "notes": "x" * 1900}


def sealed(payload: dict[str, Any] | None = None, **changes: Any) -> bytes:
    return seal(
        PAYLOAD if payload is None else payload,
        FED.spec(**changes),
        signing_key=POLICE.signing,
        recipient_public=COUNCIL.encryption.public,
        now=NOW,
    )


def opened(
    frame: bytes,
    *,
    manifest: Manifest = MANIFEST,
    recipient: str = "syn-council",
    keyring: Any = None,
    seen: Any = None,
    now: Any = NOW,
) -> Opened:
    return open_envelope(
        frame,
        recipient=recipient,
        keyring=keyring or FED.agencies[recipient].keyring,
        manifest=manifest,
        now=now,
        seen=seen or (lambda _id: False),
    )


def reason(frame: bytes, **kwargs: Any) -> str:
    with pytest.raises(EnvelopeRejected) as info:
        opened(frame, **kwargs)
    return info.value.reason


FRAME = sealed()


class TestSealOpen:
    def test_open_returns_the_payload_sealed(self) -> None:
        """A sealed payload opens to the same payload and header."""
        result = opened(FRAME)
        assert result.payload == PAYLOAD
        assert result.header.sender == "syn-police"
        assert result.envelope_sha256 == envelope_sha256(FRAME)

    def test_frame_starts_with_magic_and_is_signed_last(self) -> None:
        """The frame has the IRL1 magic, and its header bytes are the canonical header JSON."""
        result = opened(FRAME)
        assert FRAME[:4] == MAGIC
        assert canonical_json(result.header.to_json()) == result.header_bytes

    @settings(max_examples=60, deadline=None)
    @given(
        st.dictionaries(
            st.text(max_size=12),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(),
                lambda inner: (
                    st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)
                ),
                max_leaves=12,
            ),
            max_size=6,
        )
    )
    def test_open_of_seal_is_identity_for_any_json_object(self, payload: dict[str, Any]) -> None:
        """open(seal(m)) == m for arbitrary JSON objects."""
        assert opened(sealed(payload)).payload == payload

    def test_two_seals_differ_in_id_eph_and_nonce(self) -> None:
        """Each seal draws a fresh id, ephemeral key and nonce."""
        a, b = peek_header(sealed()), peek_header(sealed())
        assert (a.id, a.eph, a.nonce) != (b.id, b.eph, b.nonce)

    def test_uuid7_is_lowercase_version_7_from_the_clock(self) -> None:
        """The envelope id is a UUIDv7 carrying the sealing time in milliseconds."""
        value = uuid7(NOW, bytes(10))
        assert value[14] == "7"
        assert value == value.lower()
        assert int(value.replace("-", "")[:12], 16) == int(NOW.timestamp() * 1000)


class TestTampering:
    @pytest.mark.parametrize("bit", [0x01, 0x80])
    def test_every_single_byte_flip_is_rejected(self, bit: int) -> None:
        """Flipping a bit of any one byte of a ~2 KB envelope, at every position, is rejected."""
        assert len(FRAME) > 2000
        accepted = []
        for position in range(len(FRAME)):
            mutated = bytearray(FRAME)
            mutated[position] ^= bit
            try:
                opened(bytes(mutated))
            except EnvelopeRejected:
                continue
            accepted.append(position)
        assert accepted == []

    @pytest.mark.parametrize("cut", [1, 63, 64, 65, 2000])
    def test_truncation_is_rejected_as_bad_frame(self, cut: int) -> None:
        """A frame missing bytes at the end is a bad frame."""
        assert reason(FRAME[:-cut]) == "bad_frame"

    @pytest.mark.parametrize("extra", [b"\x00", b"IRL1", b"x" * 64])
    def test_extension_is_rejected_as_bad_frame(self, extra: bytes) -> None:
        """Trailing bytes after the signature are a bad frame."""
        assert reason(FRAME + extra) == "bad_frame"

    def test_header_swapped_between_envelopes_is_rejected(self) -> None:
        """Another envelope's header spliced onto this ciphertext fails the signature."""
        other = sealed({"synthetic": True, "ref": "SYN-0002"})
        hlen_a = int.from_bytes(FRAME[4:8], "big")
        hlen_b = int.from_bytes(other[4:8], "big")
        spliced = other[: 8 + hlen_b] + FRAME[8 + hlen_a :]
        assert reason(spliced) == "bad_signature"

    def test_empty_and_foreign_frames_are_bad_frames(self) -> None:
        """Nothing, or bytes without the magic, is a bad frame."""
        assert reason(b"") == "bad_frame"
        assert reason(b"IRR1" + FRAME[4:]) == "bad_frame"


class TestFuzz:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_are_only_ever_envelope_rejected(self, data: bytes) -> None:
        """Random bytes, with or without the magic, raise EnvelopeRejected and nothing else."""
        for frame in (data, MAGIC + data):
            assert reason(frame) == "bad_frame"

    @settings(max_examples=200, deadline=None)
    @given(st.integers(0, len(FRAME)), st.integers(0, 80), st.binary(max_size=80))
    def test_spliced_frames_are_only_ever_envelope_rejected(
        self, at: int, cut: int, insert: bytes
    ) -> None:
        """Deleting and inserting bytes anywhere is rejected with EnvelopeRejected."""
        mutated = FRAME[:at] + insert + FRAME[at + cut :]
        if mutated != FRAME:
            assert reason(mutated) in {"bad_frame", "bad_signature", "unknown_sender"}

    @settings(max_examples=150, deadline=None)
    @given(st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.integers(), max_size=8))
    def test_well_framed_garbage_headers_are_bad_frames(self, header: dict[str, Any]) -> None:
        """A correctly framed but invalid header is a bad frame."""
        body = canonical_json(header)
        frame = MAGIC + struct.pack(">I", len(body)) + body + struct.pack(">I", 16) + bytes(80)
        assert reason(frame) == "bad_frame"


class TestReceiverChecks:
    def test_message_for_b_opened_by_c_is_wrong_recipient(self) -> None:
        """A message sealed for syn-council is refused by syn-refuge."""
        assert reason(FRAME, recipient="syn-refuge") == "wrong_recipient"

    def test_replay_of_a_seen_id_is_rejected(self) -> None:
        """An id the store has already accepted is a replay."""
        envelope_id = peek_header(FRAME).id
        assert reason(FRAME, seen=lambda i: i == envelope_id) == "replay"

    def test_expired_envelope_is_rejected(self) -> None:
        """Opening at or after expires_at is refused."""
        assert reason(FRAME, now=NOW + timedelta(days=2)) == "expired"

    def test_envelope_from_too_far_in_the_future_is_clock_skew(self) -> None:
        """created_at beyond now + 5 minutes is refused."""
        assert reason(FRAME, now=NOW - timedelta(minutes=6)) == "clock_skew"

    def test_envelope_within_skew_opens(self) -> None:
        """created_at up to 5 minutes ahead of our clock is tolerated."""
        assert opened(FRAME, now=NOW - timedelta(minutes=4)).payload == PAYLOAD

    def test_revoked_sender_is_rejected(self) -> None:
        """A sender whose agency is revoked in the manifest is refused."""
        doc = FED.document(
            agencies=[
                FED.entry("syn-police", revoked_at="2026-02-28T00:00:00Z"),
                FED.entry("syn-council"),
                FED.entry("syn-refuge"),
            ]
        )
        assert reason(FRAME, manifest=FED.manifest(doc)) == "sender_revoked"

    def test_sender_with_revoked_certificate_is_rejected(self) -> None:
        """A revocation of the sender's certificate fingerprint refuses its envelopes."""
        from federation import pki

        revocation = Revocation(
            kind="certificate",
            agency="syn-police",
            ref=pki.fingerprint(POLICE.cert)[:64],
            revoked_at="2026-02-28T00:00:00Z",
            reason="key compromise",
        )
        doc = FED.document(revocations=[revocation])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "sender_revoked"

    def test_sender_key_absent_from_the_manifest_is_unknown_sender(self) -> None:
        """A signing key the manifest does not certify is unknown."""
        doc = FED.document(
            agencies=[FED.entry("syn-council"), FED.entry("syn-refuge")],
            isas=[FED.isa_entry(parties=["syn-council", "syn-refuge"])],
        )
        assert reason(FRAME, manifest=FED.manifest(doc)) == "unknown_sender"

    def test_sender_claiming_another_agency_is_rejected(self) -> None:
        """A valid signature by syn-refuge on a header saying from syn-police is refused."""
        frame = seal(
            PAYLOAD,
            FED.spec(),
            signing_key=REFUGE.signing,
            recipient_public=COUNCIL.encryption.public,
            now=NOW,
        )
        assert reason(frame) == "sender_mismatch"

    def test_isa_sha256_differing_from_the_manifest_is_rejected(self) -> None:
        """An ISA whose hash differs from the manifest's is a mismatch."""
        doc = FED.document(isas=[FED.isa_entry(sha256="0" * 64)])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "isa_mismatch"

    def test_isa_missing_from_the_manifest_is_unknown(self) -> None:
        """An ISA the manifest does not list is unknown."""
        doc = FED.document(isas=[FED.isa_entry(id="SYN-ISA-OTHER")])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "isa_unknown"

    def test_isa_not_naming_both_parties_is_rejected(self) -> None:
        """An ISA that does not list the recipient as a party is refused."""
        doc = FED.document(isas=[FED.isa_entry(parties=["syn-police", "syn-refuge"])])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "isa_parties"

    def test_suspended_isa_is_rejected(self) -> None:
        """An ISA that is not active is refused."""
        doc = FED.document(isas=[FED.isa_entry(status="suspended")])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "isa_inactive"


class TestCheckOrder:
    def test_signature_is_checked_before_the_recipient(self) -> None:
        """A forged frame for someone else is bad_signature, not wrong_recipient."""
        frame = FRAME[:-1] + bytes([FRAME[-1] ^ 1])
        assert reason(frame, recipient="syn-refuge") == "bad_signature"

    def test_recipient_is_checked_before_expiry(self) -> None:
        """An expired frame for someone else is wrong_recipient."""
        assert (
            reason(FRAME, recipient="syn-refuge", now=NOW + timedelta(days=3)) == "wrong_recipient"
        )

    def test_expiry_is_checked_before_replay(self) -> None:
        """An expired, already seen frame is expired."""
        assert reason(FRAME, now=NOW + timedelta(days=3), seen=lambda _i: True) == "expired"

    def test_replay_is_checked_before_the_isa(self) -> None:
        """A replayed frame under a changed ISA is a replay."""
        manifest = FED.manifest(FED.document(isas=[FED.isa_entry(sha256="0" * 64)]))
        assert reason(FRAME, manifest=manifest, seen=lambda _i: True) == "replay"

    def test_isa_is_checked_before_decryption(self) -> None:
        """An ISA mismatch is reported even when our key is gone."""
        manifest = FED.manifest(FED.document(isas=[FED.isa_entry(sha256="0" * 64)]))
        empty = type(COUNCIL.keyring)()
        assert reason(FRAME, manifest=manifest, keyring=empty) == "isa_mismatch"


class TestSealInputs:
    def test_expiry_not_after_now_is_refused(self) -> None:
        """Sealing with expires_at <= now is a local error."""
        with pytest.raises(CryptoError):
            sealed(expires_at=NOW)

    def test_invalid_header_value_is_refused(self) -> None:
        """A risk level outside standard|medium|high is a local error, not a bad envelope."""
        with pytest.raises(CryptoError):
            sealed(risk="extreme")

    def test_low_order_recipient_key_is_refused(self) -> None:
        """An all-zero recipient public key gives an all-zero shared secret: refused."""
        with pytest.raises(CryptoError):
            seal(
                PAYLOAD, FED.spec(), signing_key=POLICE.signing, recipient_public=bytes(32), now=NOW
            )


class TestRecipientKeys:
    def test_grace_period_key_still_opens(self) -> None:
        """After rotation, the previous key decrypts during its grace period."""
        ring = FED.agencies["syn-council"].keyring
        later = NOW + timedelta(days=1)
        rotated = type(ring)(ring.policy)
        for entry in ring.entries():
            rotated.restore(entry, COUNCIL.encryption)
        rotated.add(EncryptionKey.from_secret(bytes(range(32))), NOW)
        assert rotated.state(COUNCIL.encryption.kid, later) == "grace"
        assert opened(FRAME, keyring=rotated, now=later).payload == PAYLOAD

    def test_destroyed_key_gives_key_retired(self) -> None:
        """After grace the private key is destroyed and the message is key_retired."""
        ring = type(COUNCIL.keyring)(COUNCIL.keyring.policy)
        ring.add(COUNCIL.encryption, NOW - timedelta(days=60))
        ring.add(EncryptionKey.from_secret(bytes(range(32))), NOW - timedelta(days=20))
        assert ring.destroy_expired(NOW) == [COUNCIL.encryption.kid]
        assert reason(FRAME, keyring=ring) == "key_retired"

    def test_unknown_key_gives_key_unknown(self) -> None:
        """A kid the keyring never held is key_unknown."""
        ring = type(COUNCIL.keyring)()
        ring.add(EncryptionKey.from_secret(bytes(range(32))), NOW)
        assert reason(FRAME, keyring=ring) == "key_unknown"

    def test_low_order_ephemeral_key_is_decrypt_failed(self) -> None:
        """A signed header whose eph is a low-order point (all-zero shared secret) is refused."""
        frame = resigned(FRAME, eph=b64url_encode(bytes(32)))
        assert reason(frame) == "decrypt_failed"

    def test_ciphertext_under_another_key_is_decrypt_failed(self) -> None:
        """A properly signed frame whose ciphertext does not authenticate is decrypt_failed."""
        other = sealed({"synthetic": True})
        header = peek_header(other)
        frame = resigned(FRAME, eph=header.eph)
        assert reason(frame) == "decrypt_failed"


def resigned(frame: bytes, **header_changes: Any) -> bytes:
    """Rebuild ``frame`` with header fields changed, validly re-signed by the sender."""
    hlen = int.from_bytes(frame[4:8], "big")
    header = peek_header(frame).to_json() | header_changes
    header_bytes = canonical_json(header)
    rest = frame[8 + hlen : -64]
    body = MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes + rest
    return body + POLICE.signing.sign(ENVELOPE_TAG + body).signature
