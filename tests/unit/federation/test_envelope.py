"""Envelopes v1 and v2: sealing and the receiver's ordered checks on the envelope alone
(``federation.receive.open_envelope``: docs/protocol.md section 6, steps 1-8), each refusal with
its reason code. Steps 9-13 and the whole order are tests/unit/federation/test_receive.py."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)

from federation.canonical import b64url_decode, b64url_encode, canonical_json
from federation.envelope import (
    ENVELOPE_TAG,
    MAGIC_V1,
    MAGIC_V2,
    Opened,
    WireVersion,
    envelope_sha256,
    peek_header,
    seal,
    uuid7,
)
from federation.errors import CryptoError, EnvelopeRejected
from federation.keys import EncryptionKey
from federation.manifest import Manifest, Revocation
from federation.receive import open_envelope
from tests.unit.federation.helpers import NOW, Federation

FED = Federation()
MANIFEST = FED.manifest()
POLICE = FED.agencies["syn-police"]
COUNCIL = FED.agencies["syn-council"]
REFUGE = FED.agencies["syn-refuge"]
PAYLOAD: dict[str, Any] = {"synthetic": True, "ref": "SYN-0001", "notes": "x" * 1900}


def sealed(
    payload: dict[str, Any] | None = None, version: WireVersion = 2, **changes: Any
) -> bytes:
    return seal(
        PAYLOAD if payload is None else payload,
        FED.spec(**changes),
        signing_key=POLICE.signing,
        recipient_public=COUNCIL.encryption.public,
        now=NOW,
        version=version,
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


FRAME = sealed()  # v2, what a sender writes by default
FRAMES: dict[WireVersion, bytes] = {1: sealed(version=1), 2: FRAME}
VERSIONS = pytest.mark.parametrize("version", [1, 2])
ROUTING_FIELDS = sorted(
    ["v", "id", "from", "to", "created_at", "expires_at", "sender_key", "recipient_key", "eph",
     "nonce"]
)  # fmt: skip


class TestSealOpen:
    @VERSIONS
    def test_open_returns_the_payload_and_header_sealed(self, version: WireVersion) -> None:
        """A sealed payload opens to the same payload and the whole header, meta included."""
        result = opened(FRAMES[version])
        assert result.payload == PAYLOAD
        assert (result.header.v, result.header.sender, result.header.purpose) == (
            version, "syn-police", "marac_referral",
        )  # fmt: skip
        assert result.header.isa.id == "SYN-ISA-1"
        assert result.envelope_sha256 == envelope_sha256(FRAMES[version])

    def test_v1_frame_has_the_irl1_magic_and_the_whole_header_in_clear(self) -> None:
        """A v1 frame starts with IRL1 and its cleartext header is the canonical whole header."""
        result = opened(FRAMES[1])
        assert FRAMES[1][:4] == MAGIC_V1
        assert canonical_json(result.header.to_json()) == result.header_bytes

    def test_v2_frame_has_the_irl2_magic_and_only_the_routing_in_clear(self) -> None:
        """A v2 frame starts with IRL2 and its cleartext header is the canonical routing only."""
        result = opened(FRAME)
        assert FRAME[:4] == MAGIC_V2
        assert canonical_json(peek_header(FRAME).to_json()) == result.header_bytes
        assert sorted(json.loads(result.header_bytes)) == ROUTING_FIELDS

    def test_seal_writes_v2_by_default(self) -> None:
        """Without a version, seal writes a v2 frame."""
        assert seal(
            PAYLOAD, FED.spec(), signing_key=POLICE.signing,
            recipient_public=COUNCIL.encryption.public, now=NOW,
        )[:4] == MAGIC_V2  # fmt: skip

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
        """open(seal(m)) == m for arbitrary JSON objects, in v2 and in v1."""
        assert opened(sealed(payload)).payload == payload
        assert opened(sealed(payload, version=1)).payload == payload

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
    @VERSIONS
    @pytest.mark.parametrize("bit", [0x01, 0x80])
    def test_every_single_byte_flip_is_rejected(self, bit: int, version: WireVersion) -> None:
        """Flipping a bit of any one byte of a ~2 KB envelope, at every position, is rejected."""
        frame = FRAMES[version]
        assert len(frame) > 2000
        accepted = []
        for position in range(len(frame)):
            mutated = bytearray(frame)
            mutated[position] ^= bit
            try:
                opened(bytes(mutated))
            except EnvelopeRejected:
                continue
            accepted.append(position)
        assert accepted == []

    @VERSIONS
    @pytest.mark.parametrize("cut", [1, 63, 64, 65, 2000])
    def test_truncation_is_rejected_as_bad_frame(self, cut: int, version: WireVersion) -> None:
        """A frame missing bytes at the end is a bad frame."""
        assert reason(FRAMES[version][:-cut]) == "bad_frame"

    @VERSIONS
    @pytest.mark.parametrize("extra", [b"\x00", b"IRL1", b"x" * 64])
    def test_extension_is_rejected_as_bad_frame(self, extra: bytes, version: WireVersion) -> None:
        """Trailing bytes after the signature are a bad frame."""
        assert reason(FRAMES[version] + extra) == "bad_frame"

    @VERSIONS
    def test_header_swapped_between_envelopes_is_rejected(self, version: WireVersion) -> None:
        """Another envelope's header spliced onto this ciphertext fails the signature."""
        frame = FRAMES[version]
        other = sealed({"synthetic": True, "ref": "SYN-0002"}, version=version)
        hlen_a = int.from_bytes(frame[4:8], "big")
        hlen_b = int.from_bytes(other[4:8], "big")
        spliced = other[: 8 + hlen_b] + frame[8 + hlen_a :]
        assert reason(spliced) == "bad_signature"

    def test_empty_and_foreign_frames_are_bad_frames(self) -> None:
        """Nothing, or bytes without a known magic, is a bad frame."""
        assert reason(b"") == "bad_frame"
        assert reason(b"IRR1" + FRAME[4:]) == "bad_frame"
        assert reason(b"IRL3" + FRAME[4:]) == "bad_frame"


class TestFuzz:
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes_are_only_ever_envelope_rejected(self, data: bytes) -> None:
        """Random bytes, with or without the magic, raise EnvelopeRejected and nothing else."""
        for frame in (data, MAGIC_V1 + data, MAGIC_V2 + data):
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
    @given(
        st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.integers(), max_size=8),
        st.sampled_from([MAGIC_V1, MAGIC_V2]),
    )
    def test_well_framed_garbage_headers_are_bad_frames(
        self, header: dict[str, Any], magic: bytes
    ) -> None:
        """A correctly framed but invalid header is a bad frame."""
        body = canonical_json(header)
        frame = magic + struct.pack(">I", len(body)) + body + struct.pack(">I", 16) + bytes(80)
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
        """A revocation of the sender's certificate fingerprint refuses its envelopes (with its
        own reason since issue 15.4: the agency itself is not revoked)."""
        from federation import pki

        revocation = Revocation(
            kind="certificate",
            agency="syn-police",
            ref=pki.fingerprint(POLICE.cert)[:64],
            revoked_at="2026-02-28T00:00:00Z",
            reason="key compromise",
        )
        doc = FED.document(revocations=[revocation])
        assert reason(FRAME, manifest=FED.manifest(doc)) == "sender_certificate_revoked"

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

    @VERSIONS
    def test_isa_sha256_differing_from_the_manifest_is_rejected(self, version: WireVersion) -> None:
        """An ISA whose hash differs from the manifest's is a mismatch."""
        doc = FED.document(isas=[FED.isa_entry(sha256="0" * 64)])
        assert reason(FRAMES[version], manifest=FED.manifest(doc)) == "isa_mismatch"

    @VERSIONS
    def test_isa_missing_from_the_manifest_is_unknown(self, version: WireVersion) -> None:
        """An ISA the manifest does not list is unknown."""
        doc = FED.document(isas=[FED.isa_entry(id="SYN-ISA-OTHER")])
        assert reason(FRAMES[version], manifest=FED.manifest(doc)) == "isa_unknown"

    @VERSIONS
    def test_isa_not_naming_both_parties_is_rejected(self, version: WireVersion) -> None:
        """An ISA that does not list the recipient as a party is refused."""
        doc = FED.document(isas=[FED.isa_entry(parties=["syn-police", "syn-refuge"])])
        assert reason(FRAMES[version], manifest=FED.manifest(doc)) == "isa_parties"

    @VERSIONS
    def test_suspended_isa_is_rejected(self, version: WireVersion) -> None:
        """An ISA that is not active is refused."""
        doc = FED.document(isas=[FED.isa_entry(status="suspended")])
        assert reason(FRAMES[version], manifest=FED.manifest(doc)) == "isa_inactive"


class TestCheckOrder:
    """Steps 1-8 of docs/protocol.md section 6, numbered as in ``federation.receive``."""

    def test_signature_is_checked_before_the_recipient(self) -> None:
        """Step 2 before 3: a forged frame for someone else is bad_signature."""
        frame = FRAME[:-1] + bytes([FRAME[-1] ^ 1])
        assert reason(frame, recipient="syn-refuge") == "bad_signature"

    def test_recipient_is_checked_before_expiry(self) -> None:
        """Step 3 before 4: an expired frame for someone else is wrong_recipient."""
        assert (
            reason(FRAME, recipient="syn-refuge", now=NOW + timedelta(days=3)) == "wrong_recipient"
        )

    def test_expiry_is_checked_before_replay(self) -> None:
        """Step 4 before 6: an expired, already seen frame is expired."""
        assert reason(FRAME, now=NOW + timedelta(days=3), seen=lambda _i: True) == "expired"

    def test_replay_is_checked_before_the_isa(self) -> None:
        """Step 6 before 8: a replayed frame under a changed ISA is a replay."""
        manifest = FED.manifest(FED.document(isas=[FED.isa_entry(sha256="0" * 64)]))
        assert reason(FRAME, manifest=manifest, seen=lambda _i: True) == "replay"

    def test_replay_is_checked_before_decryption(self) -> None:
        """Step 6 before 7: a replayed frame whose key is gone is a replay."""
        empty = type(COUNCIL.keyring)()
        assert reason(FRAME, keyring=empty, seen=lambda _i: True) == "replay"

    @VERSIONS
    def test_decryption_is_checked_before_the_isa(self, version: WireVersion) -> None:
        """Step 7 before 8, in both versions: a frame under a changed ISA whose key is gone is
        key_unknown (v2's ISA is known only once decrypted; v1 keeps the same order)."""
        manifest = FED.manifest(FED.document(isas=[FED.isa_entry(sha256="0" * 64)]))
        empty = type(COUNCIL.keyring)()
        assert reason(FRAMES[version], manifest=manifest, keyring=empty) == "key_unknown"


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


def resigned(frame: bytes, magic: bytes | None = None, **header_changes: Any) -> bytes:
    """Rebuild ``frame`` with its cleartext header fields (or magic) changed, validly re-signed
    by the sender (the ciphertext is kept, so its associated data no longer matches)."""
    hlen = int.from_bytes(frame[4:8], "big")
    header = json.loads(frame[8 : 8 + hlen]) | header_changes
    header_bytes = canonical_json(header)
    rest = frame[8 + hlen : -64]
    body = (magic or frame[:4]) + struct.pack(">I", len(header_bytes)) + header_bytes + rest
    return signed(body)


def signed(body: bytes) -> bytes:
    return body + POLICE.signing.sign(ENVELOPE_TAG + body).signature


def forged_v2(document: Any) -> bytes:
    """A v2 frame, validly encrypted for syn-council and signed by syn-police, whose plaintext
    is the canonical JSON of ``document`` (what a misbehaving sender could send)."""
    eph_secret = hashlib.sha256(b"isa-relay test forged eph").digest()
    eph_public = crypto_scalarmult_base(eph_secret)
    routing = peek_header(FRAME).to_json() | {"eph": b64url_encode(eph_public)}
    header = canonical_json(routing)
    recipient = COUNCIL.encryption.public
    key = hashlib.blake2b(
        crypto_scalarmult(eph_secret, recipient) + eph_public + recipient,
        digest_size=32,
        person=b"isa-relay/v1 kdf",
    ).digest()
    ct = crypto_aead_xchacha20poly1305_ietf_encrypt(
        canonical_json(document), header, b64url_decode(routing["nonce"]), key
    )
    return signed(
        MAGIC_V2 + struct.pack(">I", len(header)) + header + struct.pack(">I", len(ct)) + ct
    )


META: dict[str, Any] = {
    "type": "marac_referral",
    "isa": {"id": "SYN-ISA-1", "version": "1.0.0", "sha256": FED.isa_entry().sha256},
    "purpose": "marac_referral",
    "lawful_basis": {"art6": "6(1)(e)", "art9": "9(2)(g)"},
    "risk": "high",
    "handling": ["must_not_inform:perpetrator"],
}


class TestVersions:
    def test_forged_v2_helper_opens_when_well_formed(self) -> None:
        """The forging helper's well-formed plaintext opens (so its refusals below are real)."""
        assert opened(forged_v2({"meta": META, "payload": PAYLOAD})).payload == PAYLOAD

    def test_v1_header_under_the_v2_magic_is_a_bad_frame(self) -> None:
        """A signed v1 header framed with IRL2 is refused: the magic and v must agree."""
        assert reason(resigned(FRAMES[1], magic=MAGIC_V2)) == "bad_frame"

    def test_v2_header_under_the_v1_magic_is_a_bad_frame(self) -> None:
        """A signed v2 header framed with IRL1 is refused (v1 needs the meta in clear)."""
        assert reason(resigned(FRAME, magic=MAGIC_V1)) == "bad_frame"

    def test_v2_header_with_v_1_is_a_bad_frame(self) -> None:
        """An IRL2 frame whose header says v 1 is refused."""
        assert reason(resigned(FRAME, v=1)) == "bad_frame"

    def test_meta_in_a_v2_cleartext_header_is_a_bad_frame(self) -> None:
        """A v2 header carrying a meta field in clear is refused (exactly the routing fields)."""
        assert reason(resigned(FRAME, purpose="marac_referral")) == "bad_frame"

    def test_v2_plaintext_without_meta_is_payload_invalid(self) -> None:
        """A v2 plaintext that is a bare payload (v1's form) is refused as payload_invalid."""
        assert reason(forged_v2(PAYLOAD)) == "payload_invalid"

    def test_v2_meta_with_an_invalid_value_is_payload_invalid(self) -> None:
        """A sealed meta whose risk is not standard|medium|high is refused."""
        meta = META | {"risk": "extreme"}
        assert reason(forged_v2({"meta": meta, "payload": PAYLOAD})) == "payload_invalid"

    def test_v2_meta_cannot_override_a_routing_field(self) -> None:
        """A sealed meta naming another recipient is refused, not merged over the routing."""
        meta = META | {"to": "syn-refuge"}
        assert reason(forged_v2({"meta": meta, "payload": PAYLOAD})) == "payload_invalid"

    def test_v2_payload_that_is_not_an_object_is_payload_invalid(self) -> None:
        """A sealed payload that is a list is refused."""
        assert reason(forged_v2({"meta": META, "payload": [1]})) == "payload_invalid"


_CODE = st.from_regex(r"syn_[a-z0-9_]{6,24}", fullmatch=True)


class TestV2Confidentiality:
    @settings(max_examples=60, deadline=None)
    @given(
        type_=_CODE,
        purpose=_CODE,
        isa_id=st.from_regex(r"SYN-ISA-[A-Z0-9]{6,12}", fullmatch=True),
        risk=st.sampled_from(["standard", "medium", "high"]),
        basis=st.lists(_CODE, min_size=1, max_size=3, unique=True),
        handling=st.lists(_CODE, max_size=2, unique=True),
    )
    def test_broker_visible_frame_carries_no_referral_meta(
        self,
        type_: str,
        purpose: str,
        isa_id: str,
        risk: str,
        basis: list[str],
        handling: list[str],
    ) -> None:
        """No meta value (type, purpose, ISA id, risk, lawful basis, handling) appears anywhere
        in a v2 frame's bytes, though each appears in the v1 frame sealed from the same spec."""
        spec: dict[str, Any] = {
            "type": type_, "purpose": purpose, "risk": risk, "handling": handling,
            "isa": FED.spec().isa.model_copy(update={"id": isa_id}),
            "lawful_basis": {f"syn-police.{i}": code for i, code in enumerate(basis)},
        }  # fmt: skip
        values = [type_, purpose, isa_id, risk, *basis, *handling]
        payload = {"synthetic": True}
        v1, v2 = sealed(payload, version=1, **spec), sealed(payload, **spec)
        assert [v for v in values if v.encode() not in v1] == []
        assert [v for v in values if v.encode() in v2] == []
