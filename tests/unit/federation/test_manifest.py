"""The signed manifest: chained to the pinned root, no rollback, expiry, keys from their owner."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation import pki
from federation.canonical import b64url_encode, canonical_json, format_time, parse_canonical
from federation.errors import ManifestRejected
from federation.keys import SigningKey, announce
from federation.manifest import (
    Manifest,
    Revocation,
    TrustState,
    build_manifest,
    diff_manifests,
    reload_manifest,
    unverified_document,
    verify_manifest,
)
from tests.unit.federation.helpers import NOW, Federation, seed_key

FED = Federation()
FILE = FED.manifest_file()


def verify(data: bytes, *, current_serial: int = 0, now: Any = NOW, **kw: Any) -> Manifest:
    return verify_manifest(
        data,
        root_cert=kw.get("root", FED.root),
        pinned_fingerprint=kw.get("pin", FED.pin),
        now=now,
        current_serial=current_serial,
    )


def refusal(data: bytes, **kw: Any) -> str:
    with pytest.raises(ManifestRejected) as info:
        verify(data, **kw)
    return info.value.reason


class TestVerifyManifest:
    def test_valid_manifest_is_accepted_with_its_serial(self) -> None:
        """A manifest signed by the certified signer, newer than held, is accepted."""
        manifest = verify(FED.manifest_file(), current_serial=4)
        assert manifest.serial == 5

    @pytest.mark.parametrize("held", [5, 6, 100])
    def test_lower_or_equal_serial_is_rollback(self, held: int) -> None:
        """A serial not strictly greater than the one held is refused."""
        assert refusal(FED.manifest_file(), current_serial=held) == "rollback"

    def test_signature_by_an_uncertified_key_is_rejected(self) -> None:
        """The same document signed by a key the signer certificate does not certify fails."""
        data = build_manifest(
            FED.document(), signer_key=SigningKey(seed_key("mallory")), signer_cert=FED.signer_cert
        )
        assert refusal(data) == "bad_signature"

    def test_signer_certificate_from_another_root_is_untrusted(self) -> None:
        """A signer certified by a different CA is refused."""
        other = Federation(root_key=SigningKey(seed_key("other root")))
        data = other.manifest_file()
        assert refusal(data) == "signer_untrusted"

    def test_agency_certificate_cannot_sign_manifests(self) -> None:
        """An agency's signing certificate lacks the manifest-signing usage."""
        police = FED.agencies["syn-police"]
        data = build_manifest(FED.document(), signer_key=police.signing, signer_cert=police.cert)
        assert refusal(data) == "signer_untrusted"

    def test_root_not_matching_the_pin_is_rejected(self) -> None:
        """A root whose fingerprint differs from the pinned one is refused."""
        assert refusal(FED.manifest_file(), pin="00" * 32) == "root_not_pinned"

    def test_expired_manifest_is_rejected(self) -> None:
        """A manifest past expires_at is not accepted."""
        assert refusal(FED.manifest_file(), now=NOW + timedelta(days=8)) == "expired"

    def test_manifest_issued_in_the_future_is_rejected(self) -> None:
        """A manifest issued beyond the allowed skew is not yet valid."""
        doc = FED.document(issued_at=format_time(NOW + timedelta(hours=1)))
        assert refusal(FED.manifest_file(doc)) == "not_yet_valid"

    def test_key_not_signed_by_its_own_agency_is_rejected(self) -> None:
        """An encryption key announced for syn-council but signed by the operator is refused."""
        council = FED.agencies["syn-council"]
        forged = announce(
            FED.signer_key,
            agency="syn-council",
            public_key=bytes(range(32)),
            not_before=NOW,
            not_after=NOW + timedelta(days=30),
        )
        doc = FED.document(
            agencies=[
                FED.entry("syn-police"),
                FED.entry("syn-council", announcements=[council.announcement, forged]),
                FED.entry("syn-refuge"),
            ]
        )
        assert refusal(FED.manifest_file(doc)) == "announcement_invalid"

    def test_key_signed_by_another_agency_is_rejected(self) -> None:
        """syn-police cannot announce a key in syn-council's name."""
        forged = announce(
            FED.agencies["syn-police"].signing,
            agency="syn-council",
            public_key=bytes(range(32)),
            not_before=NOW,
            not_after=NOW + timedelta(days=30),
        )
        doc = FED.document(
            agencies=[
                FED.entry("syn-police"),
                FED.entry("syn-council", announcements=[forged]),
                FED.entry("syn-refuge"),
            ]
        )
        assert refusal(FED.manifest_file(doc)) == "announcement_invalid"

    def test_certificate_naming_another_agency_is_rejected(self) -> None:
        """An agency entry carrying another agency's certificate is refused."""
        police = FED.entry("syn-police")
        doc = FED.document(
            agencies=[
                police,
                FED.entry("syn-council", certificate=police.certificate),
                FED.entry("syn-refuge"),
            ]
        )
        assert refusal(FED.manifest_file(doc)) == "certificate_subject"

    def test_two_agencies_sharing_a_signing_key_are_rejected(self) -> None:
        """Each certified signing key belongs to one agency only (sender_key is unambiguous)."""
        police = FED.agencies["syn-police"]
        twin = FED.issue("syn-council", police.signing.verify_key, serial=77)
        doc = FED.document(
            agencies=[
                FED.entry("syn-police"),
                FED.entry(
                    "syn-council",
                    announcements=[],
                    certificate=b64url_encode(pki.certificate_to_der(twin)),
                ),
                FED.entry("syn-refuge"),
            ]
        )
        assert refusal(FED.manifest_file(doc)) == "duplicate"

    def test_expired_signer_certificate_is_untrusted(self) -> None:
        """A manifest signed under an expired signer certificate is refused."""
        old = FED.issue(
            "manifest-signer",
            FED.signer_key.verify_key,
            manifest=True,
            not_before=NOW - timedelta(days=60),
            not_after=NOW - timedelta(days=1),
        )
        data = build_manifest(FED.document(), signer_key=FED.signer_key, signer_cert=old)
        assert refusal(data) == "signer_untrusted"

    def test_isa_party_not_listed_is_rejected(self) -> None:
        """Every ISA party must be an agency of the manifest."""
        doc = FED.document(isas=[FED.isa_entry(parties=["syn-police", "syn-nobody"])])
        assert refusal(FED.manifest_file(doc)) == "isa_party_unknown"

    def test_any_change_to_the_signed_body_is_rejected(self) -> None:
        """Editing the manifest body after signing breaks the signature."""
        outer = parse_canonical(FED.manifest_file().rstrip(b"\n"))
        outer["manifest"]["serial"] = 99
        assert refusal(canonical_json(outer)) == "bad_signature"

    def test_non_canonical_file_is_malformed(self) -> None:
        """Whitespace or key order other than canonical is refused."""
        data = FED.manifest_file().replace(b'{"format"', b'{ "format"', 1)
        assert refusal(data) == "malformed"


class TestManifestTampering:
    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_any_flipped_byte_is_a_manifest_rejection(self, data: st.DataObject) -> None:
        """A byte flipped anywhere in the file raises ManifestRejected and nothing else."""
        position = data.draw(st.integers(0, len(FILE) - 1))
        bit = data.draw(st.sampled_from([0x01, 0x20, 0x80]))
        mutated = bytearray(FILE)
        mutated[position] ^= bit
        with pytest.raises(ManifestRejected):
            verify(bytes(mutated))


class TestUnverifiedDocument:
    def test_unverified_document_reads_the_content_for_display(self) -> None:
        """The display helper returns the document without checking trust."""
        other = Federation(root_key=SigningKey(seed_key("other root")))
        assert unverified_document(other.manifest_file()).serial == 5

    def test_unverified_document_still_refuses_a_malformed_file(self) -> None:
        """Garbage is refused even for display."""
        with pytest.raises(ManifestRejected):
            unverified_document(b"{}")


class TestTrustState:
    def test_expired_manifest_puts_the_holder_in_fail_closed(self) -> None:
        """A held manifest past expires_at means fail-closed: no sending."""
        state = TrustState(FED.manifest())
        assert state.status(NOW) == "valid"
        assert state.status(NOW + timedelta(days=7)) == "fail_closed"
        assert state.can_send(NOW + timedelta(days=7)) is False

    def test_accept_moves_forward_and_refuses_rollback(self) -> None:
        """Accepting a newer manifest raises the serial; the old one is then refused."""
        state = TrustState(None).accept(
            FED.manifest_file(), root_cert=FED.root, pinned_fingerprint=FED.pin, now=NOW
        )
        newer = state.accept(
            FED.manifest_file(FED.document(serial=6)),
            root_cert=FED.root,
            pinned_fingerprint=FED.pin,
            now=NOW,
        )
        assert newer.manifest is not None
        assert newer.manifest.serial == 6
        with pytest.raises(ManifestRejected):
            newer.accept(
                FED.manifest_file(), root_cert=FED.root, pinned_fingerprint=FED.pin, now=NOW
            )

    def test_reload_of_an_expired_held_manifest_reports_fail_closed(self) -> None:
        """After a restart, an expired held manifest still loads and reports fail-closed."""
        later = NOW + timedelta(days=30)
        manifest = reload_manifest(
            FED.manifest_file(), root_cert=FED.root, pinned_fingerprint=FED.pin
        )
        assert TrustState(manifest).status(later) == "fail_closed"


class TestLookups:
    def test_current_encryption_key_is_the_newest_valid_announcement(self) -> None:
        """Of two valid announcements the one with the later not_before is chosen."""
        council = FED.agencies["syn-council"]
        newer = announce(
            council.signing,
            agency="syn-council",
            public_key=bytes(range(1, 33)),
            not_before=NOW,
            not_after=NOW + timedelta(days=30),
        )
        doc = FED.document(
            agencies=[
                FED.entry("syn-police"),
                FED.entry("syn-council", announcements=[council.announcement, newer]),
                FED.entry("syn-refuge"),
            ]
        )
        manifest = FED.manifest(doc)
        assert manifest.current_encryption_key("syn-council", NOW) == newer
        assert manifest.current_encryption_key("syn-council", NOW - timedelta(hours=1)) == (
            council.announcement
        )

    def test_revoked_key_is_not_current(self) -> None:
        """A kid revoked in the manifest is never offered for encryption."""
        council = FED.agencies["syn-council"]
        revocation = Revocation(
            kind="key",
            agency="syn-council",
            ref=council.announcement.kid,
            revoked_at=format_time(NOW),
            reason="lost laptop",
        )
        manifest = FED.manifest(FED.document(revocations=[revocation]))
        assert manifest.current_encryption_key("syn-council", NOW) is None

    def test_agency_isa_and_signing_key_lookups(self) -> None:
        """Lookups by agency id, ISA id and signing-key hash return the listed entries."""
        import hashlib

        manifest = FED.manifest()
        police = FED.agencies["syn-police"]
        key_hash = hashlib.sha256(bytes(police.signing.verify_key)).hexdigest()
        identity = manifest.signing_key_for(key_hash)
        assert identity is not None
        assert identity.agency == "syn-police"
        assert manifest.agency("syn-police") is not None
        assert manifest.isa("SYN-ISA-1") is not None
        assert manifest.agency("nobody") is None


class TestDiff:
    def test_diff_names_serial_agency_key_isa_and_revocation_changes(self) -> None:
        """diff_manifests gives one readable line per change."""
        council = FED.agencies["syn-council"]
        newer = announce(
            council.signing,
            agency="syn-council",
            public_key=bytes(range(1, 33)),
            not_before=NOW,
            not_after=NOW + timedelta(days=30),
        )
        old = FED.document()
        new = FED.document(
            serial=6,
            agencies=[
                FED.entry("syn-police", revoked_at="2026-03-01T00:00:00Z"),
                FED.entry("syn-council", announcements=[council.announcement, newer]),
            ],
            isas=[FED.isa_entry(version="1.1.0")],
        )
        lines = diff_manifests(old, new)
        assert lines[0] == "serial 5 -> 6"
        assert "- agency syn-refuge" in lines
        assert "agency syn-police: revoked_at None -> '2026-03-01T00:00:00Z'" in lines
        assert any(line.startswith(f"agency syn-council: + key {newer.kid}") for line in lines)
        assert "isa SYN-ISA-1: version '1.0.0' -> '1.1.0'" in lines

    def test_identical_manifests_have_no_diff(self) -> None:
        """No changes, no lines."""
        assert diff_manifests(FED.document(), FED.document()) == []


class TestPki:
    def test_fingerprint_is_sha256_of_der(self) -> None:
        """The pin is the hex SHA-256 of the DER certificate."""
        import hashlib

        assert FED.pin == hashlib.sha256(pki.certificate_to_der(FED.root)).hexdigest()

    def test_agency_certificate_verifies_to_its_subject(self) -> None:
        """A certificate issued by the root verifies and names its agency."""
        cert = FED.agencies["syn-police"].cert
        assert pki.verify_certificate(cert, FED.root, NOW) == "syn-police"

    def test_expired_certificate_is_rejected(self) -> None:
        """A certificate outside its validity at now is refused."""
        cert = FED.agencies["syn-police"].cert
        with pytest.raises(ManifestRejected) as info:
            pki.verify_certificate(cert, FED.root, NOW + timedelta(days=400))
        assert info.value.reason == "certificate_expired"

    def test_manifest_signer_cannot_act_as_an_agency(self) -> None:
        """The signer certificate lacks the agency usage."""
        with pytest.raises(ManifestRejected) as info:
            pki.verify_certificate(FED.signer_cert, FED.root, NOW)
        assert info.value.reason == "certificate_usage"

    def test_pem_and_der_round_trip(self) -> None:
        """Certificates load back from PEM and DER unchanged."""
        cert = FED.agencies["syn-council"].cert
        assert pki.certificate_from_bytes(pki.certificate_to_pem(cert)) == cert
        assert pki.certificate_from_bytes(pki.certificate_to_der(cert)) == cert

    def test_garbage_certificate_is_malformed(self) -> None:
        """Bytes that are not a certificate are refused cleanly."""
        with pytest.raises(ManifestRejected) as info:
            pki.certificate_from_bytes(b"not a certificate")
        assert info.value.reason == "certificate_malformed"

    def test_certificate_is_encoded_as_b64url_der_in_entries(self) -> None:
        """Agency entries carry the DER certificate as base64url."""
        entry = FED.entry("syn-police")
        assert entry.certificate == b64url_encode(
            pki.certificate_to_der(FED.agencies["syn-police"].cert)
        )
