"""Specification of revoking ONE key or ONE certificate (issue 15.4): ``isa-broker key revoke``
and ``isa-broker certificate revoke`` with RFC 5280 reason codes, and what senders and
receivers do with them at their next manifest."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from agent.keystore import load_keyring
from broker.agency import announce_key
from broker.fedstate import FederationLayout, announcement_json, read_private
from broker.revocation import revoke_certificate, revoke_key
from federation import pki
from federation.envelope import seal
from federation.errors import EnvelopeRejected
from federation.isa import load_isa
from federation.keys import EncryptionKey, KeyAnnouncement, Keyring, RotationPolicy, announce
from federation.manifest import Manifest
from federation.pipeline import prepare
from federation.receive import open_envelope
from federation.synth import generate_referral
from tests.unit.broker.commands.test_agency import run
from tests.unit.broker.conftest import NOW
from tests.unit.broker.test_agency import manifest_of

LATER = NOW + timedelta(minutes=5)


def _only_kid(layout: FederationLayout, agency: str) -> str:
    [path] = layout.announcements(agency).glob("*.json")
    return path.stem


def _second_key(layout: FederationLayout, agency: str) -> KeyAnnouncement:
    """A newer key of ``agency``, announced by it and published (serial 2)."""
    signing = read_private(layout.agency_dir(agency) / "keys" / "signing.key")
    note = announce(
        signing, agency=agency, public_key=EncryptionKey.generate().public,
        not_before=NOW + timedelta(seconds=1), not_after=NOW + timedelta(days=30),
    )  # fmt: skip
    announce_key(layout, announcement_json(note), NOW + timedelta(seconds=1))
    return note


def _envelope(layout: FederationLayout, manifest: Manifest, sender: str, recipient: str) -> bytes:
    """A MARAC referral from ``sender`` sealed to ``recipient``'s current key."""
    isa_path = layout.policies / "marac-referrals.yaml"
    isa = load_isa(str(isa_path), isa_path.read_bytes())
    payload = generate_referral("marac_referral", random.Random(3), risk_level="high")
    prepared = prepare(
        isa, sender=sender, recipient="marac-coordinator", purpose="marac_risk_management",
        message_type="marac_referral", payload=payload, now=LATER, ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prepared.spec is not None, prepared.decision
    key = manifest.current_encryption_key(recipient, LATER)
    assert key is not None
    return seal(
        prepared.payload, dataclasses.replace(prepared.spec, recipient=recipient),
        signing_key=read_private(layout.agency_dir(sender) / "keys" / "signing.key"),
        recipient_public=key.public_bytes(), now=LATER,
    )  # fmt: skip


def _keyring(layout: FederationLayout, agency: str) -> Keyring:
    return load_keyring(layout.agency_dir(agency) / "keys" / "encryption", RotationPolicy(), None)


def _open(layout: FederationLayout, frame: bytes, manifest: Manifest, recipient: str) -> None:
    open_envelope(
        frame, manifest=manifest, keyring=_keyring(layout, recipient), recipient=recipient,
        now=LATER, seen=lambda _id: False,
    )  # fmt: skip


class TestKeyRevocation:
    def test_a_sender_takes_the_next_valid_key_once_the_newest_is_revoked(
        self, layout: FederationLayout
    ) -> None:
        """With assist's newer kid revoked, the next manifest's current key is the older one."""
        older = _only_kid(layout, "assist")
        newer = _second_key(layout, "assist")
        assert manifest_of(layout).current_encryption_key("assist", LATER).kid == newer.kid  # type: ignore[union-attr]
        revoke_key(layout, agency_id="assist", kid=newer.kid, reason="keyCompromise", now=LATER)
        assert manifest_of(layout).current_encryption_key("assist", LATER).kid == older  # type: ignore[union-attr]

    def test_the_manifest_carries_the_reason_code_and_note(self, layout: FederationLayout) -> None:
        """The revocation reads back as kind key, the kid, and its RFC 5280 code."""
        kid = _only_kid(layout, "assist")
        serial = revoke_key(
            layout, agency_id="assist", kid=kid, reason="superseded", note="SYN", now=LATER
        )
        revocation = manifest_of(layout).revocation_of("key", kid)
        assert (serial, revocation.agency, revocation.code, revocation.reason) == (  # type: ignore[union-attr]
            2, "assist", "superseded", "superseded: SYN",
        )  # fmt: skip

    def test_an_envelope_sealed_to_a_compromised_key_of_ours_is_refused(
        self, layout: FederationLayout
    ) -> None:
        """assist refuses an envelope sealed before its key was revoked as keyCompromise."""
        frame = _envelope(layout, manifest_of(layout), "police-scotland", "assist")
        revoke_key(layout, agency_id="assist", kid=_only_kid(layout, "assist"),
                   reason="keyCompromise", now=LATER)  # fmt: skip
        with pytest.raises(EnvelopeRejected) as refused:
            _open(layout, frame, manifest_of(layout), "assist")
        assert (refused.value.reason, refused.value.detail) == ("key_revoked", "keyCompromise")

    def test_an_envelope_sealed_to_a_superseded_key_still_opens_in_grace(
        self, layout: FederationLayout
    ) -> None:
        """A key revoked as superseded (retired, not exposed) still decrypts what was sealed."""
        frame = _envelope(layout, manifest_of(layout), "police-scotland", "assist")
        revoke_key(layout, agency_id="assist", kid=_only_kid(layout, "assist"),
                   reason="superseded", now=LATER)  # fmt: skip
        _open(layout, frame, manifest_of(layout), "assist")


class TestCertificateRevocation:
    def test_an_envelope_signed_under_a_revoked_certificate_is_refused_with_the_reason(
        self, layout: FederationLayout
    ) -> None:
        """Revoking police-scotland's certificate (keyCompromise) refuses its envelopes."""
        frame = _envelope(layout, manifest_of(layout), "police-scotland", "assist")
        cert = pki.certificate_from_bytes(layout.agency_cert("police-scotland").read_bytes())
        revoke_certificate(layout, agency_id="police-scotland", certificate=str(cert.serial_number),
                           reason="keyCompromise", now=LATER)  # fmt: skip
        with pytest.raises(EnvelopeRejected) as refused:
            _open(layout, frame, manifest_of(layout), "assist")
        assert (refused.value.reason, refused.value.detail) == (
            "sender_certificate_revoked", "keyCompromise",
        )  # fmt: skip

    def test_a_certificate_is_named_by_its_fingerprint_too(self, layout: FederationLayout) -> None:
        """The fingerprint names the certificate as well as its serial does."""
        cert = pki.certificate_from_bytes(layout.agency_cert("assist").read_bytes())
        fingerprint = pki.fingerprint(cert)
        revoke_certificate(layout, agency_id="assist", certificate=fingerprint,
                           reason="cessationOfOperation", now=LATER)  # fmt: skip
        assert manifest_of(layout).revocation_of("certificate", fingerprint) is not None


class TestRevokeCommands:
    def test_key_revoke_prints_the_new_serial(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """isa-broker key revoke publishes serial 2 and says so."""
        kid = _only_kid(layout, "assist")
        argv = ("key", "revoke", "--federation", str(layout.root), "--agency", "assist",
                "--kid", kid, "--reason", "keyCompromise")  # fmt: skip
        code, out, _ = run(capsys, *argv)
        assert (code, f"key {kid} of assist revoked" in out, "serial 2" in out) == (0, True, True)

    @pytest.mark.parametrize(
        ("agency", "kid", "reason", "says"),
        [
            ("assist", "0" * 32, "keyCompromise", "has announced no key"),
            ("syn-nobody", "0" * 32, "keyCompromise", "no agency 'syn-nobody'"),
            ("assist", "not-a-kid", "keyCompromise", "32 lowercase hex"),
            ("assist", "KID", "lostIt", "one of unspecified, keyCompromise"),
        ],
    )
    def test_key_revoke_refuses_what_it_cannot_name(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str],
        agency: str, kid: str, reason: str, says: str,
    ) -> None:  # fmt: skip
        """An unknown kid, agency or reason code is a diagnosis (exit 1); nothing is published."""
        before = layout.manifest.read_bytes()
        code, _, err = run(capsys, "key", "revoke", "--federation", str(layout.root),
                           "--agency", agency, "--kid", kid, "--reason", reason)  # fmt: skip
        assert (code, says in err, "Traceback" in err) == (1, True, False)
        assert layout.manifest.read_bytes() == before

    def test_certificate_revoke_refuses_an_unknown_certificate(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A serial that is not the agency's certificate is refused, naming the real one."""
        code, _, err = run(capsys, "certificate", "revoke", "--federation", str(layout.root),
                           "--agency", "assist", "--certificate", "424242",
                           "--reason", "keyCompromise")  # fmt: skip
        assert (code, "holds no certificate '424242'" in err) == (1, True)

    def test_a_key_is_revoked_only_once(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Revoking the same kid again is refused as already revoked."""
        argv = ("key", "revoke", "--federation", str(layout.root), "--agency", "assist",
                "--kid", _only_kid(layout, "assist"), "--reason", "superseded")  # fmt: skip
        assert run(capsys, *argv)[0] == 0
        code, _, err = run(capsys, *argv)
        assert (code, "already revoked" in err) == (1, True)
