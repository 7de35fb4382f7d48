"""Specification of agent.keyrotation: after a rotation new messages use the new key once the
manifest carries it; the old key opens messages during its grace and is key_retired after."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.audit import AuditLog
from agent.keyrotation import KeyRotator, key_status
from agent.keystore import load_keyring, save_keyring, write_key_file
from federation.envelope import seal
from federation.errors import EnvelopeRejected
from federation.keys import Keyring, RotationPolicy, parse_announcement, verify_announcement
from federation.manifest import Manifest
from federation.receive import open_envelope
from tests.unit.federation.helpers import NOW, Federation

FED = Federation()
POLICY = RotationPolicy(rotate_every=timedelta(days=30), grace=timedelta(hours=12))
COUNCIL = FED.agencies["syn-council"]
POLICE = FED.agencies["syn-police"]
PAYLOAD = {"synthetic": True}


@dataclass
class Setup:
    rotator: KeyRotator
    audit: AuditLog
    enc_dir: Path
    data_dir: Path


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    enc_dir, data_dir = tmp_path / "keys" / "encryption", tmp_path / "data"
    ring = Keyring(POLICY)
    ring.add(COUNCIL.encryption, NOW - timedelta(days=1))
    write_key_file(enc_dir / f"{COUNCIL.encryption.kid}.key", COUNCIL.encryption, None)
    save_keyring(enc_dir, ring)
    audit = AuditLog(
        data_dir, agency="syn-council", signing_key=COUNCIL.signing, subject_secret=bytes(32),
        clock=lambda: NOW,
    )  # fmt: skip
    async with audit:
        rotator = KeyRotator(
            agency="syn-council", encryption_dir=enc_dir, data_dir=data_dir,
            signing_key=COUNCIL.signing, keyring=load_keyring(enc_dir, POLICY, None), audit=audit,
        )  # fmt: skip
        yield Setup(rotator, audit, enc_dir, data_dir)


def _frame(recipient_public: bytes, at: datetime = NOW) -> bytes:
    return seal(
        PAYLOAD, FED.spec(), signing_key=POLICE.signing, recipient_public=recipient_public, now=at
    )


def _open(
    frame: bytes, ring: Keyring, at: datetime, manifest: Manifest | None = None
) -> dict[str, object]:
    opened = open_envelope(
        frame, recipient="syn-council", keyring=ring, manifest=manifest or FED.manifest(),
        now=at, seen=lambda _id: False,
    )  # fmt: skip
    return dict(opened.payload)


class TestRotate:
    async def test_old_key_passes_to_grace_and_new_key_is_current(self, setup: Setup) -> None:
        """Right after rotation the new kid is current and the old one in grace."""
        note = await setup.rotator.rotate(NOW)
        states = {s.kid: s.state for s in key_status(setup.rotator.keyring, setup.data_dir, NOW)}
        assert states == {COUNCIL.encryption.kid: "grace", note.kid: "current"}

    async def test_the_announcement_is_written_and_signed_by_the_agency(self, setup: Setup) -> None:
        """data_dir/announcements/<kid>.json verifies against the agency's signing key."""
        note = await setup.rotator.rotate(NOW)
        path = setup.data_dir / "announcements" / f"{note.kid}.json"
        parsed = parse_announcement(json.loads(path.read_text()))
        assert verify_announcement(parsed, COUNCIL.signing.verify_key) == note

    async def test_the_keyring_on_disk_holds_the_new_key(self, setup: Setup) -> None:
        """Another process loading the keyring finds the new key current."""
        note = await setup.rotator.rotate(NOW)
        current = load_keyring(setup.enc_dir, POLICY, None).current(NOW)
        assert current is not None
        assert current.kid == note.kid

    async def test_new_messages_use_the_new_key_once_the_manifest_carries_it(
        self, setup: Setup
    ) -> None:
        """A manifest with both announcements offers the new key; a message to it opens."""
        note = await setup.rotator.rotate(NOW)
        entry = FED.entry("syn-council", announcements=[COUNCIL.announcement, note])
        others = [FED.entry(a) for a in FED.agencies if a != "syn-council"]
        manifest = FED.manifest(FED.document(agencies=[*others, entry]))
        later = NOW + timedelta(minutes=5)
        offered = manifest.current_encryption_key("syn-council", later)
        assert offered is not None
        assert offered.kid == note.kid
        frame = _frame(offered.public_bytes(), later)
        assert _open(frame, setup.rotator.keyring, later, manifest) == PAYLOAD

    async def test_rotation_is_audited(self, setup: Setup) -> None:
        """A key_rotation entry names the new kid, never key material."""
        note = await setup.rotator.rotate(NOW)
        entries = await setup.audit.entries()
        assert [(e.action, e.outcome) for e in entries] == [("key_rotation", "rotated")]
        assert note.kid in entries[0].detail


class TestGraceAndRetirement:
    async def test_message_sealed_to_the_old_key_opens_during_grace(self, setup: Setup) -> None:
        """Six hours into a twelve-hour grace, the old key still decrypts."""
        old_frame = _frame(COUNCIL.encryption.public)
        await setup.rotator.rotate(NOW)
        ring = load_keyring(setup.enc_dir, POLICY, None)
        assert _open(old_frame, ring, NOW + timedelta(hours=6)) == PAYLOAD

    async def test_after_grace_the_old_key_is_destroyed_and_messages_are_key_retired(
        self, setup: Setup
    ) -> None:
        """Past grace the key file is gone and a late message is refused as key_retired."""
        old_frame = _frame(COUNCIL.encryption.public)
        await setup.rotator.rotate(NOW)
        after = NOW + timedelta(hours=13)
        assert await setup.rotator.destroy_expired(after) == [COUNCIL.encryption.kid]
        assert not (setup.enc_dir / f"{COUNCIL.encryption.kid}.key").exists()
        with pytest.raises(EnvelopeRejected) as info:
            _open(old_frame, load_keyring(setup.enc_dir, POLICY, None), after)
        assert info.value.reason == "key_retired"
        outcomes = [e.outcome for e in await setup.audit.entries()]
        assert outcomes == ["rotated", "destroyed"]


class TestAutomaticRotation:
    async def test_not_due_early_in_the_period(self, setup: Setup) -> None:
        """A key one day into a thirty-day period is not rotated by the housekeeper."""
        assert await setup.rotator.tick(NOW) is None

    async def test_due_three_days_before_the_period_ends(self, setup: Setup) -> None:
        """The housekeeper rotates once the current key has three days left."""
        due = NOW - timedelta(days=1) + timedelta(days=27)
        note = await setup.rotator.tick(due)
        assert note is not None
        assert setup.rotator.keyring.state(note.kid, due) == "current"
        assert await setup.rotator.tick(due + timedelta(hours=1)) is None

    async def test_a_key_the_manifest_revokes_is_rotated_away_from_at_once(
        self, setup: Setup
    ) -> None:
        """Early in its period, a current key the manifest revokes (15.4) is replaced next tick."""
        revoked = KeyRotator(
            agency="syn-council", encryption_dir=setup.enc_dir, data_dir=setup.data_dir,
            signing_key=COUNCIL.signing, keyring=load_keyring(setup.enc_dir, POLICY, None),
            audit=setup.audit, revoked=lambda: {COUNCIL.encryption.kid},
        )  # fmt: skip
        note = await revoked.tick(NOW)
        assert note is not None
        assert note.kid != COUNCIL.encryption.kid

    async def test_a_rotation_made_elsewhere_is_picked_up(
        self, setup: Setup, tmp_path: Path
    ) -> None:
        """sync() re-reads a keyring another process (isa-agent keys rotate) changed."""
        other = KeyRotator(
            agency="syn-council", encryption_dir=setup.enc_dir, data_dir=setup.data_dir,
            signing_key=COUNCIL.signing, keyring=load_keyring(setup.enc_dir, POLICY, None),
            audit=setup.audit,
        )  # fmt: skip
        note = await other.rotate(NOW)
        os.utime(setup.enc_dir / "keyring.json", ns=(1, 1))
        assert setup.rotator.sync() is True
        assert setup.rotator.keyring.state(note.kid, NOW) == "current"


class TestOrdering:
    async def test_two_rotations_in_one_second_still_order(self, setup: Setup) -> None:
        """The second key starts one second after the first: 'newest' is never a tie."""
        first = await setup.rotator.rotate(NOW)
        second = await setup.rotator.rotate(NOW)
        assert second.not_before > first.not_before
        later = NOW + timedelta(seconds=2)
        current = setup.rotator.keyring.current(later)
        assert current is not None
        assert current.kid == second.kid
        assert setup.rotator.keyring.state(first.kid, later) == "grace"
