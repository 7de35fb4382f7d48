"""``broker.agency``: certify an agency's own key, publish its announcements, revoke it."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from broker.agency import (
    add_agency,
    announce_key,
    generate_agency,
    parse_public_key,
    public_key_from_csr,
    revoke_agency,
)
from broker.config import load_broker_config, verify_rabbit_password
from broker.fedstate import FederationLayout, announcement_json, load_state
from federation import pki
from federation.canonical import b64url_encode
from federation.errors import ConfigError, KeyFileError
from federation.keys import EncryptionKey, KeyAnnouncement, SigningKey, announce
from federation.manifest import Manifest, reload_manifest
from tests.unit.broker.conftest import NOW

LATER = NOW + timedelta(minutes=5)


def manifest_of(layout: FederationLayout) -> Manifest:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    data = layout.manifest.read_bytes()
    return reload_manifest(data, root_cert=root, pinned_fingerprint=pki.fingerprint(root))


def snapshot(layout: FederationLayout) -> dict[str, bytes]:
    files = sorted(p for p in layout.root.rglob("*") if p.is_file())
    return {str(p.relative_to(layout.root)): p.read_bytes() for p in files}


def announcement(signing: SigningKey, agency: str, days: int = 30) -> KeyAnnouncement:
    key = EncryptionKey.generate()
    return announce(
        signing,
        agency=agency,
        public_key=key.public,
        not_before=NOW,
        not_after=NOW + timedelta(days=days),
    )


class TestAddAgency:
    def test_certifies_the_agencys_own_key_under_the_federation_root(
        self, layout: FederationLayout
    ) -> None:
        """The new certificate names the agency, carries its key and chains to the root."""
        own = SigningKey.generate()
        added = add_agency(
            layout, agency_id="syn-clinic", name="SYN Clinic", public_key=own.verify_key, now=NOW
        )
        cert = pki.certificate_from_bytes(added.certificate.read_bytes())
        root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
        assert pki.verify_certificate(cert, root, LATER) == "syn-clinic"
        assert bytes(pki.certificate_public_key(cert)) == bytes(own.verify_key)

    def test_publishes_the_next_serial_listing_the_agency(self, layout: FederationLayout) -> None:
        """The manifest goes from serial 1 to 2 and lists the agency, with no keys yet."""
        added = add_agency(
            layout,
            agency_id="syn-clinic",
            name="SYN Clinic",
            public_key=SigningKey.generate().verify_key,
            now=NOW,
        )
        manifest = manifest_of(layout)
        entry = manifest.agency("syn-clinic")
        assert (added.serial, manifest.serial, load_state(layout).serial) == (2, 2, 2)
        assert entry is not None
        assert (entry.name, entry.broker_user, entry.announcements) == (
            "SYN Clinic",
            "syn-unit-never-provisioned.syn-clinic",  # the federation's user prefix + the id
            [],
        )

    def test_stores_only_the_hash_of_the_broker_password_it_returns(
        self, layout: FederationLayout
    ) -> None:
        """broker.toml gets a RabbitMQ hash that verifies the returned password, never the text."""
        added = add_agency(
            layout,
            agency_id="syn-clinic",
            name="SYN Clinic",
            public_key=SigningKey.generate().verify_key,
            now=NOW,
        )
        entry = next(a for a in load_broker_config(layout.broker_toml).agencies
                     if a.id == "syn-clinic")  # fmt: skip
        assert verify_rabbit_password(added.broker_password, entry.password_hash)
        assert added.broker_password not in layout.broker_toml.read_text()
        assert added.broker_password not in repr(added)
        assert entry.revoked is False

    def test_refuses_an_existing_id(self, layout: FederationLayout) -> None:
        """Agency ids are never re-used, and nothing changes on disk."""
        before = snapshot(layout)
        with pytest.raises(ConfigError, match="already exists"):
            add_agency(
                layout,
                agency_id="assist",
                name="Another",
                public_key=SigningKey.generate().verify_key,
                now=NOW,
            )
        assert snapshot(layout) == before

    def test_refuses_a_key_certified_for_another_agency(self, layout: FederationLayout) -> None:
        """One signing key, one agency: a second id for the same key is refused."""
        key = SigningKey.generate().verify_key
        add_agency(layout, agency_id="syn-one", name="One", public_key=key, now=NOW)
        with pytest.raises(ConfigError, match="already certified for 'syn-one'"):
            add_agency(layout, agency_id="syn-two", name="Two", public_key=key, now=NOW)

    @pytest.mark.parametrize("bad_id", ["Syn-Clinic", "x", "syn clinic", "1syn", ""])
    def test_refuses_a_malformed_id(self, layout: FederationLayout, bad_id: str) -> None:
        """Ids are lowercase letters, digits and hyphens, starting with a letter."""
        with pytest.raises(ConfigError, match="agency id"):
            add_agency(
                layout, agency_id=bad_id, name="N", public_key=SigningKey.generate().verify_key,
                now=NOW,
            )  # fmt: skip

    def test_puts_every_file_back_when_the_manifest_cannot_be_published(
        self, layout: FederationLayout
    ) -> None:
        """All or nothing: a failing manifest build leaves the directory exactly as it was."""
        before = snapshot(layout)
        os.chmod(layout.signer_key, 0o644)  # the signer key is refused as unsafe
        before[str(layout.signer_key.relative_to(layout.root))] = layout.signer_key.read_bytes()
        with pytest.raises(KeyFileError):
            add_agency(
                layout,
                agency_id="syn-clinic",
                name="SYN Clinic",
                public_key=SigningKey.generate().verify_key,
                now=NOW,
            )
        assert snapshot(layout) == before


class TestParsePublicKey:
    def test_reads_base64url_of_32_bytes(self) -> None:
        """The form an agency sends: base64url of the raw Ed25519 public key."""
        key = SigningKey.generate().verify_key
        assert bytes(parse_public_key(b64url_encode(bytes(key)))) == bytes(key)

    @pytest.mark.parametrize("text", ["", "not base64!", b64url_encode(b"short")])
    def test_refuses_anything_else(self, text: str) -> None:
        """A wrong length or alphabet is a clear ConfigError."""
        with pytest.raises(ConfigError, match="--public-key"):
            parse_public_key(text)


def csr_for(
    common_name: str, key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey | None = None
) -> bytes:
    """A PEM PKCS#10 request with subject CN ``common_name`` signed by ``key``."""
    key = key or Ed25519PrivateKey.generate()
    algorithm = None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


class TestPublicKeyFromCsr:
    def test_returns_the_requested_key_when_the_cn_is_the_agency(self) -> None:
        """A request signed by the key it names, for the right id, yields that key."""
        private = Ed25519PrivateKey.generate()
        key = public_key_from_csr(csr_for("syn-clinic", private), "syn-clinic")
        assert bytes(key) == private.public_key().public_bytes_raw()

    def test_refuses_a_request_for_another_id(self) -> None:
        """The CN must be exactly the agency id being added."""
        with pytest.raises(ConfigError, match="subject CN must be exactly 'syn-clinic'"):
            public_key_from_csr(csr_for("syn-other"), "syn-clinic")

    def test_refuses_a_request_whose_signature_does_not_verify(self) -> None:
        """A tampered request proves no possession of the key."""
        der = x509.load_pem_x509_csr(csr_for("syn-clinic")).public_bytes(serialization.Encoding.DER)
        tampered = der[:-1] + bytes([der[-1] ^ 1])
        with pytest.raises(ConfigError, match="signature does not verify"):
            public_key_from_csr(tampered, "syn-clinic")

    def test_refuses_a_non_ed25519_key(self) -> None:
        """Agency signing keys are Ed25519."""
        request = csr_for("syn-clinic", ec.generate_private_key(ec.SECP256R1()))
        with pytest.raises(ConfigError, match="must be Ed25519"):
            public_key_from_csr(request, "syn-clinic")

    @pytest.mark.parametrize("data", [b"", b"-----BEGIN CERTIFICATE REQUEST-----\nxx", b"\x30\x03"])
    def test_refuses_what_is_not_a_request(self, data: bytes) -> None:
        """Garbage is a clear ConfigError."""
        with pytest.raises(ConfigError, match="not a PKCS#10"):
            public_key_from_csr(data, "syn-clinic")


class TestAnnounceKey:
    def test_publishes_an_announcement_signed_by_the_agencys_certified_key(
        self, layout: FederationLayout
    ) -> None:
        """The agency's own announcement goes into the next serial."""
        own = SigningKey.generate()
        add_agency(layout, agency_id="syn-clinic", name="C", public_key=own.verify_key, now=NOW)
        note = announcement(own, "syn-clinic")
        accepted, serial = announce_key(layout, announcement_json(note), LATER)
        entry = manifest_of(layout).agency("syn-clinic")
        assert (accepted, serial) == (note, 3)
        assert entry is not None
        assert [a.kid for a in entry.announcements] == [note.kid]

    def test_refuses_a_key_the_operator_signed_for_the_agency(
        self, layout: FederationLayout
    ) -> None:
        """The operator cannot inject an encryption key: only the agency's signature counts."""
        add_agency(
            layout, agency_id="syn-clinic", name="C",
            public_key=SigningKey.generate().verify_key, now=NOW,
        )  # fmt: skip
        before = snapshot(layout)
        forged = announcement(SigningKey.generate(), "syn-clinic")
        with pytest.raises(ConfigError, match="not signed by 'syn-clinic'"):
            announce_key(layout, announcement_json(forged), LATER)
        assert snapshot(layout) == before

    def test_refuses_an_unknown_agency(self, layout: FederationLayout) -> None:
        """An announcement for an agency not in the federation is refused."""
        note = announcement(SigningKey.generate(), "syn-nobody")
        with pytest.raises(ConfigError, match="unknown agency 'syn-nobody'"):
            announce_key(layout, announcement_json(note), LATER)

    def test_refuses_a_revoked_agency(self, layout: FederationLayout) -> None:
        """A revoked agency cannot announce keys."""
        own = SigningKey.generate()
        add_agency(layout, agency_id="syn-clinic", name="C", public_key=own.verify_key, now=NOW)
        revoke_agency(layout, agency_id="syn-clinic", reason="synthetic test", now=NOW)
        with pytest.raises(ConfigError, match="revoked"):
            announce_key(layout, announcement_json(announcement(own, "syn-clinic")), LATER)

    def test_refuses_an_expired_key(self, layout: FederationLayout) -> None:
        """A key whose announcement already ended is refused."""
        own = SigningKey.generate()
        add_agency(layout, agency_id="syn-clinic", name="C", public_key=own.verify_key, now=NOW)
        with pytest.raises(ConfigError, match="expired"):
            announce_key(
                layout, announcement_json(announcement(own, "syn-clinic", days=1)),
                NOW + timedelta(days=2),
            )  # fmt: skip

    def test_refuses_the_same_key_twice(self, layout: FederationLayout) -> None:
        """Re-announcing a kid is refused rather than silently re-published."""
        own = SigningKey.generate()
        add_agency(layout, agency_id="syn-clinic", name="C", public_key=own.verify_key, now=NOW)
        data = announcement_json(announcement(own, "syn-clinic"))
        announce_key(layout, data, LATER)
        with pytest.raises(ConfigError, match="already announced"):
            announce_key(layout, data, LATER)

    @pytest.mark.parametrize(
        "data", [b"\xff\xfe", b"[1, 2", b'{"agency": "assist"}', b"[" * 100_000, b"9" * 5000]
    )
    def test_refuses_what_is_not_an_announcement(
        self, layout: FederationLayout, data: bytes
    ) -> None:
        """Undecodable, unparsable or incomplete files give a clear ConfigError."""
        with pytest.raises(ConfigError, match="announcement"):
            announce_key(layout, data, LATER)

    def test_a_missing_certificate_is_a_diagnosis(self, layout: FederationLayout) -> None:
        """A damaged federation directory gives a ConfigError naming the file, not a traceback."""
        layout.agency_cert("assist").unlink()
        with pytest.raises(ConfigError, match=r"certs/assist\.pem: cannot read"):
            announce_key(
                layout, announcement_json(announcement(SigningKey.generate(), "assist")), LATER
            )


class TestRevokeAgency:
    def test_publishes_revoked_at_and_an_agency_revocation(self, layout: FederationLayout) -> None:
        """The next serial marks the agency revoked, with the reason, and refuses it as sender."""
        serial = revoke_agency(layout, agency_id="assist", reason="SYN key compromise", now=LATER)
        manifest = manifest_of(layout)
        revocation = manifest.document.revocations[0]
        entry = manifest.agency("assist")
        assert (serial, manifest.serial) == (2, 2)
        assert entry is not None
        assert entry.revoked_at == "2026-11-24T12:05:00Z"
        assert (revocation.kind, revocation.ref, revocation.reason) == (
            "agency", "assist", "SYN key compromise",
        )  # fmt: skip
        assert manifest.is_revoked("assist")
        assert manifest.current_encryption_key("assist", LATER) is None
        identity = manifest.signing_key_of("assist")
        assert identity is not None
        assert identity.revoked

    def test_marks_the_broker_user_revoked_for_provisioning(self, layout: FederationLayout) -> None:
        """broker.toml says revoked, so the next provision deletes the user; others unchanged."""
        revoke_agency(layout, agency_id="assist", reason="SYN", now=LATER)
        config = load_broker_config(layout.broker_toml)
        assert [a.id for a in config.revoked_agencies] == ["assist"]
        assert "assist" not in [a.id for a in config.active_agencies]
        assert len(config.active_agencies) == len(config.agencies) - 1

    def test_records_the_revocation_in_federation_toml(self, layout: FederationLayout) -> None:
        """The state keeps when and why, so later serials keep the revocation."""
        revoke_agency(layout, agency_id="assist", reason="SYN", now=LATER)
        agency = load_state(layout).agency("assist")
        assert agency is not None
        assert (agency.revoked_at, agency.revocation_reason) == ("2026-11-24T12:05:00Z", "SYN")

    def test_refuses_to_revoke_twice(self, layout: FederationLayout) -> None:
        """A second revocation is refused (the first time stays the record)."""
        revoke_agency(layout, agency_id="assist", reason="SYN", now=LATER)
        with pytest.raises(ConfigError, match="already revoked at 2026-11-24T12:05:00Z"):
            revoke_agency(layout, agency_id="assist", reason="again", now=LATER)

    def test_refuses_an_unknown_agency(self, layout: FederationLayout) -> None:
        """Revoking an id the federation does not have is an error, not a no-op."""
        with pytest.raises(ConfigError, match="no agency 'syn-nobody'"):
            revoke_agency(layout, agency_id="syn-nobody", reason="SYN", now=LATER)

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "line\nbreak"])
    def test_requires_a_short_printable_reason(self, layout: FederationLayout, reason: str) -> None:
        """The reason is published: 1-200 printable characters."""
        with pytest.raises(ConfigError, match="--reason"):
            revoke_agency(layout, agency_id="assist", reason=reason, now=LATER)


class TestGenerateAgency:
    def test_makes_a_runnable_agent_directory_with_an_announced_key(
        self, layout: FederationLayout
    ) -> None:
        """DEV: keys, config and token are written; the manifest lists its announced key."""
        from agent.config import load_settings

        made = generate_agency(layout, agency_id="syn-clinic", name="SYN Clinic", now=NOW)
        settings = load_settings(made.config, environ={})
        entry = manifest_of(layout).agency("syn-clinic")
        keyring = json.loads((settings.keys.encryption_dir / "keyring.json").read_text())
        assert settings.agency == "syn-clinic"
        assert settings.broker.password == made.added.broker_password
        assert entry is not None
        assert [a.kid for a in entry.announcements] == [keyring[0]["kid"]]
        assert (made.config.parent / "api-token").read_text().strip() == made.api_token
        assert made.config.stat().st_mode & 0o077 == 0
        assert made.api_token not in repr(made)

    def test_refuses_an_existing_agency_directory(self, layout: FederationLayout) -> None:
        """It never overwrites an agency's keys."""
        with pytest.raises(ConfigError, match="already exists"):
            generate_agency(layout, agency_id="assist", name="again", now=NOW)
