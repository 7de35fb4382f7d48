"""Key ids, announcements, the rotation lifecycle, key files and receipts."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from federation.canonical import b64url_encode
from federation.envelope import uuid7
from federation.errors import KeyFileError, ManifestRejected, ReceiptRejected
from federation.keyfile import (
    KdfLimits,
    dump_private_key,
    load_encryption_key,
    load_private_key,
    load_signing_key,
)
from federation.keys import (
    EncryptionKey,
    Keyring,
    KeyringEntry,
    RotationPolicy,
    SigningKey,
    UtcTime,
    kid,
    utc,
    verify_announcement,
)
from federation.receipts import make_receipt, verify_receipt
from tests.unit.federation.helpers import NOW, Federation, seed_key

FAST = KdfLimits(opslimit=1, memlimit=8192)
FED = Federation()
PLAIN_FILE = dump_private_key(SigningKey(seed_key("s")))
SEALED_FILE = dump_private_key(EncryptionKey.from_secret(seed_key("e")), "pw", limits=FAST)
POLICE = FED.agencies["syn-police"]
COUNCIL = FED.agencies["syn-council"]


class TestKid:
    def test_kid_is_first_32_hex_of_sha256(self) -> None:
        """kid = first 32 hex characters of SHA-256 of the raw public key."""
        public = bytes(range(32))
        assert kid(public) == hashlib.sha256(public).hexdigest()[:32]

    def test_kid_refuses_wrong_length(self) -> None:
        """Only 32-byte keys have a kid."""
        with pytest.raises(ValueError):
            kid(b"short")


class TestUtcTime:
    @pytest.mark.parametrize(
        "text",
        [
            "2026-02-30T12:00:00Z",
            "2026-13-01T00:00:00Z",
            "\u0662\u0660\u0662\u0666-03-01T12:00:00Z",
            "2026-03-01T12:00:00+00:00",
            "2026-03-01T12:00:00.5Z",
            "2026-03-01 12:00:00Z",
        ],
    )
    def test_only_real_canonical_utc_times_validate(self, text: str) -> None:
        """Impossible dates, non-ASCII digits, offsets and fractions are refused."""
        with pytest.raises(ValidationError):
            TypeAdapter(UtcTime).validate_python(text)

    def test_canonical_time_parses_to_aware_utc(self) -> None:
        """A valid time parses to the same aware UTC moment."""
        assert utc(TypeAdapter(UtcTime).validate_python("2026-03-01T12:00:00Z")) == NOW


class TestAnnouncements:
    def test_announcement_verifies_with_its_agency_key(self) -> None:
        """An announcement signed by the agency verifies with its public key."""
        ann = POLICE.announcement
        assert verify_announcement(ann, POLICE.signing.verify_key) == ann

    def test_announcement_with_another_key_is_rejected(self) -> None:
        """Another agency's key does not verify the announcement."""
        with pytest.raises(ManifestRejected):
            verify_announcement(POLICE.announcement, COUNCIL.signing.verify_key)

    def test_altered_window_is_rejected(self) -> None:
        """Extending not_after after signing breaks the signature."""
        altered = POLICE.announcement.model_copy(update={"not_after": "2030-01-01T00:00:00Z"})
        with pytest.raises(ManifestRejected):
            verify_announcement(altered, POLICE.signing.verify_key)

    def test_kid_not_matching_the_key_is_rejected(self) -> None:
        """A signed announcement whose kid is not the key's kid is refused."""
        body = POLICE.announcement.body() | {"kid": "0" * 32}
        from federation.canonical import canonical_json
        from federation.keys import ANNOUNCEMENT_TAG, KeyAnnouncement

        sig = POLICE.signing.sign(ANNOUNCEMENT_TAG + canonical_json(body)).signature
        forged = KeyAnnouncement(**body, sig=b64url_encode(sig))
        with pytest.raises(ManifestRejected):
            verify_announcement(forged, POLICE.signing.verify_key)


class TestLifecycle:
    def test_new_key_is_current_then_grace_then_destroyed(self) -> None:
        """Defaults: current for 30 days, grace for 14 more, then destroyed."""
        ring = Keyring()
        key = EncryptionKey.from_secret(seed_key("a"))
        ring.add(key, NOW)
        assert ring.state(key.kid, NOW + timedelta(days=29)) == "current"
        assert ring.state(key.kid, NOW + timedelta(days=31)) == "grace"
        assert ring.state(key.kid, NOW + timedelta(days=44)) == "destroyed"

    def test_rotation_moves_the_old_key_to_grace_at_once(self) -> None:
        """Adding a newer key makes it current and starts the old key's grace."""
        ring = Keyring(RotationPolicy(rotate_every=timedelta(days=7), grace=timedelta(days=2)))
        old, new = (
            EncryptionKey.from_secret(seed_key("o")),
            EncryptionKey.from_secret(seed_key("n")),
        )
        ring.add(old, NOW)
        ring.add(new, NOW + timedelta(days=3))
        later = NOW + timedelta(days=4)
        assert ring.current(later) is not None
        assert ring.current(later).kid == new.kid  # type: ignore[union-attr]
        assert ring.state(old.kid, later) == "grace"
        assert ring.state(old.kid, NOW + timedelta(days=5)) == "destroyed"

    def test_key_added_out_of_order_is_superseded_by_the_newer_one(self) -> None:
        """A key restored after its successor still retires when the successor began."""
        ring = Keyring()
        old, new = (
            EncryptionKey.from_secret(seed_key("o")),
            EncryptionKey.from_secret(seed_key("n")),
        )
        ring.add(new, NOW)
        ring.add(old, NOW - timedelta(days=5))
        assert ring.state(old.kid, NOW + timedelta(hours=1)) == "grace"
        assert ring.state(new.kid, NOW + timedelta(hours=1)) == "current"

    def test_adding_the_same_key_twice_is_refused(self) -> None:
        """A kid cannot be re-added (its lifecycle would be reset)."""
        ring = Keyring()
        key = EncryptionKey.from_secret(seed_key("a"))
        ring.add(key, NOW)
        with pytest.raises(ValueError):
            ring.add(key, NOW + timedelta(days=100))

    def test_destroy_expired_forgets_bytes_but_remembers_the_kid(self) -> None:
        """A destroyed key is dropped once, and stays known as destroyed."""
        ring = Keyring()
        key = EncryptionKey.from_secret(seed_key("d"))
        ring.add(key, NOW)
        later = NOW + timedelta(days=45)
        assert ring.destroy_expired(later) == [key.kid]
        assert ring.destroy_expired(later) == []
        assert ring.state(key.kid, NOW) == "destroyed"

    def test_persisted_keyring_restores_the_same_states(self) -> None:
        """Entries saved as JSON plus key files restore a keyring with identical states."""
        ring = Keyring()
        old, new = (
            EncryptionKey.from_secret(seed_key("o")),
            EncryptionKey.from_secret(seed_key("n")),
        )
        ring.add(old, NOW - timedelta(days=40))
        ring.add(new, NOW - timedelta(days=10))
        saved = [entry.model_dump_json() for entry in ring.entries()]
        files = {k.kid: dump_private_key(k) for k in (old, new)}
        restored = Keyring()
        for text in saved:
            entry = KeyringEntry.model_validate_json(text)
            restored.restore(entry, load_encryption_key(files[entry.kid], mode=0o600))
        for moment in (NOW, NOW + timedelta(days=5), NOW + timedelta(days=30)):
            assert [restored.state(k, moment) for k in files] == [
                ring.state(k, moment) for k in files
            ]

    def test_keyring_entry_refuses_naive_times(self) -> None:
        """Lifecycle times must be timezone-aware."""
        with pytest.raises(ValueError):
            KeyringEntry(
                kid="0" * 32, not_before=NOW.replace(tzinfo=None), retire_at=NOW, destroy_at=NOW
            )

    def test_policy_refuses_non_positive_rotation(self) -> None:
        """A zero rotation period is a configuration error."""
        with pytest.raises(ValueError):
            RotationPolicy(rotate_every=timedelta(0))

    def test_rotation_due_after_rotate_every(self) -> None:
        """A key becomes due for rotation after rotate_every."""
        policy = RotationPolicy()
        assert policy.rotation_due(NOW, NOW + timedelta(days=30)) is True
        assert policy.rotation_due(NOW, NOW + timedelta(days=29)) is False


class TestKeyFile:
    def test_plain_signing_key_round_trips(self) -> None:
        """An unencrypted signing key loads back to the same key."""
        key = SigningKey(seed_key("s"))
        assert bytes(load_signing_key(dump_private_key(key), mode=0o100600)) == bytes(key)

    def test_passphrase_protected_encryption_key_round_trips(self) -> None:
        """A passphrase-sealed X25519 key loads back with the passphrase."""
        key = EncryptionKey.from_secret(seed_key("e"))
        data = dump_private_key(key, "correct horse", limits=FAST)
        assert load_encryption_key(data, mode=0o600, passphrase="correct horse").kid == key.kid

    def test_sealed_file_does_not_contain_the_secret(self) -> None:
        """With a passphrase the raw secret is not in the file."""
        key = EncryptionKey.from_secret(seed_key("e"))
        data = dump_private_key(key, "pw", limits=FAST)
        assert b64url_encode(key.secret_bytes()).encode() not in data

    def test_wrong_passphrase_is_refused(self) -> None:
        """A wrong passphrase is a key file error."""
        data = dump_private_key(SigningKey(seed_key("s")), "right", limits=FAST)
        with pytest.raises(KeyFileError):
            load_private_key(data, mode=0o600, passphrase="wrong")

    def test_missing_passphrase_is_refused(self) -> None:
        """An encrypted key file without a passphrase is refused."""
        data = dump_private_key(SigningKey(seed_key("s")), "right", limits=FAST)
        with pytest.raises(KeyFileError, match="passphrase is needed"):
            load_private_key(data, mode=0o600)

    @pytest.mark.parametrize("mode", [0o100640, 0o100604, 0o100644, 0o100660, 0o100601])
    def test_group_or_other_access_is_refused(self, mode: int) -> None:
        """A key file readable or writable by group or other is refused."""
        data = dump_private_key(SigningKey(seed_key("s")))
        with pytest.raises(KeyFileError, match="chmod 600"):
            load_private_key(data, mode=mode)

    def test_wrong_kind_is_refused(self) -> None:
        """An X25519 key file is not accepted where a signing key is expected."""
        data = dump_private_key(EncryptionKey.from_secret(seed_key("e")))
        with pytest.raises(KeyFileError):
            load_signing_key(data, mode=0o600)

    def test_public_key_mismatch_is_refused(self) -> None:
        """A file whose public key does not match its secret is refused."""
        data = dump_private_key(SigningKey(seed_key("s")))
        other = b64url_encode(bytes(SigningKey(seed_key("t")).verify_key))
        import json

        doc = json.loads(data)
        doc["public"] = other
        from federation.canonical import canonical_json

        with pytest.raises(KeyFileError, match="does not match"):
            load_private_key(canonical_json(doc), mode=0o600)

    @pytest.mark.parametrize("blob", [PLAIN_FILE, SEALED_FILE], ids=["plain", "sealed"])
    def test_every_flipped_bit_is_a_key_file_error(self, blob: bytes) -> None:
        """Flipping bit 0, 1 or 7 of any byte (but the final LF) is refused with KeyFileError."""
        accepted = []
        for position in range(len(blob) - 1):
            for bit in (0x01, 0x02, 0x80):
                mutated = bytearray(blob)
                mutated[position] ^= bit
                try:
                    load_private_key(bytes(mutated), mode=0o600, passphrase="pw")
                except KeyFileError:
                    continue
                accepted.append((position, bit))
        assert accepted == []

    def test_memlimit_not_in_whole_kib_is_refused(self) -> None:
        """libsodium rounds memlimit down to KiB, so an unrounded value marks an edited file."""
        edited = SEALED_FILE.replace(b'"memlimit":8192', b'"memlimit":9192', 1)
        with pytest.raises(KeyFileError, match="kdf"):
            load_private_key(edited, mode=0o600, passphrase="pw")

    def test_garbage_is_refused(self) -> None:
        """Bytes that are not a key file are refused cleanly."""
        with pytest.raises(KeyFileError):
            load_private_key(b"\x00\xff not json", mode=0o600)


class TestReceipts:
    def receipt(self, **changes: object) -> bytes:
        args: dict[str, object] = {
            "envelope_id": uuid7(NOW, bytes(10)),
            "envelope_sha256": "ab" * 32,
            "issuer": "syn-council",
            "to": "syn-police",
            "status": "delivered",
            "reason": None,
            "at": NOW,
            "signing_key": COUNCIL.signing,
        }
        args.update(changes)
        return make_receipt(**args)  # type: ignore[arg-type]

    def test_receipt_verifies_against_the_issuers_certified_key(self) -> None:
        """A delivered receipt verifies and reads back its fields."""
        receipt = verify_receipt(
            self.receipt(), manifest=FED.manifest(), expected_from="syn-council"
        )
        assert (receipt.status, receipt.issuer, receipt.reason) == (
            "delivered",
            "syn-council",
            None,
        )

    def test_rejected_receipt_carries_its_reason(self) -> None:
        """A rejection receipt carries the reason code."""
        frame = self.receipt(status="rejected", reason="isa_violation")
        assert verify_receipt(frame, manifest=FED.manifest()).reason == "isa_violation"

    def test_receipt_signed_by_another_agency_is_rejected(self) -> None:
        """A receipt claiming to be from syn-council signed by syn-police fails."""
        frame = self.receipt(signing_key=POLICE.signing)
        with pytest.raises(ReceiptRejected) as info:
            verify_receipt(frame, manifest=FED.manifest())
        assert info.value.reason == "bad_signature"

    def test_unexpected_issuer_is_rejected(self) -> None:
        """A receipt from an agency other than the envelope's recipient is refused."""
        with pytest.raises(ReceiptRejected) as info:
            verify_receipt(self.receipt(), manifest=FED.manifest(), expected_from="syn-refuge")
        assert info.value.reason == "unexpected_issuer"

    def test_every_byte_flip_of_a_receipt_is_rejected(self) -> None:
        """Any single changed byte of a receipt frame is refused."""
        frame, manifest = self.receipt(), FED.manifest()
        for position in range(len(frame)):
            mutated = bytearray(frame)
            mutated[position] ^= 0x01
            with pytest.raises(ReceiptRejected):
                verify_receipt(bytes(mutated), manifest=manifest)

    def test_trailing_bytes_are_rejected(self) -> None:
        """A receipt frame ends exactly after its signature."""
        with pytest.raises(ReceiptRejected):
            verify_receipt(self.receipt() + b"\x00", manifest=FED.manifest())
