"""``federation.sending``: the named cause that stops sealing for a recipient, in rule order."""

from __future__ import annotations

from datetime import timedelta

from federation.canonical import b64url_encode
from federation.keys import announce
from federation.manifest import Manifest, Revocation
from federation.pki import certificate_to_der
from federation.sending import send_block
from tests.unit.federation.helpers import NOW, Federation

SENDER, RECIPIENT = "syn-police", "syn-council"


def _expired_cert(fed: Federation, agency: str, serial: int) -> str:
    keys = fed.agencies[agency]
    cert = fed.issue(
        agency, keys.signing.verify_key, serial=serial,
        not_before=NOW - timedelta(days=366), not_after=NOW - timedelta(hours=1),
    )  # fmt: skip
    return b64url_encode(certificate_to_der(cert))


def _lapsed_announcement(fed: Federation, agency: str) -> object:
    keys = fed.agencies[agency]
    return announce(
        keys.signing, agency=agency, public_key=keys.encryption.public,
        not_before=NOW - timedelta(days=31), not_after=NOW - timedelta(days=1),
    )  # fmt: skip


def _manifest(fed: Federation, **agencies: dict[str, object]) -> Manifest:
    entries = [fed.entry(a, **agencies.get(a.replace("-", "_"), {})) for a in fed.agencies]
    return fed.manifest(fed.document(agencies=entries))


def _cause(manifest: Manifest, fed: Federation) -> str | None:
    key = fed.agencies[SENDER].signing.key_id
    block = send_block(manifest, sender_key=key, recipient=RECIPIENT, now=NOW)
    return None if block is None else block.cause


class TestSendBlock:
    def test_a_sound_manifest_blocks_nothing(self) -> None:
        """Both certificates valid and a current recipient key: nothing stops sealing."""
        fed = Federation()
        assert _cause(_manifest(fed), fed) is None

    def test_our_expired_certificate_is_named_as_such(self) -> None:
        """A sender certificate past its not_after is sender_certificate_expired."""
        fed = Federation()
        manifest = _manifest(fed, syn_police={"certificate": _expired_cert(fed, SENDER, 40)})
        assert _cause(manifest, fed) == "sender_certificate_expired"

    def test_our_key_missing_from_the_manifest_is_a_sender_certificate_problem(self) -> None:
        """A signing key the manifest does not certify cannot sign anything a peer accepts."""
        fed = Federation()
        block = send_block(_manifest(fed), sender_key="0" * 64, recipient=RECIPIENT, now=NOW)
        assert block is not None
        assert (block.cause, block.detail) == (
            "sender_certificate_expired",
            "our signing key is not certified in the federation manifest",
        )

    def test_a_lapsed_recipient_announcement_is_recipient_key_unavailable(self) -> None:
        """No recipient announcement valid now: recipient_key_unavailable, saying when it lapsed."""
        fed = Federation()
        lapsed = {"announcements": [_lapsed_announcement(fed, RECIPIENT)]}
        manifest = _manifest(fed, syn_council=lapsed)
        block = send_block(manifest, sender_key=fed.agencies[SENDER].signing.key_id,
                           recipient=RECIPIENT, now=NOW)  # fmt: skip
        assert block is not None
        assert block.cause == "recipient_key_unavailable"
        assert "lapsed at 2026-02-28T12:00:00Z" in block.detail

    def test_a_revoked_recipient_key_is_recipient_key_unavailable(self) -> None:
        """A revocation of the recipient's only kid leaves it no current key."""
        fed = Federation()
        kid = fed.agencies[RECIPIENT].announcement.kid
        revoked = Revocation(
            kind="key", agency=RECIPIENT, ref=kid, revoked_at="2026-02-01T00:00:00Z"
        )
        entries = [fed.entry(a) for a in fed.agencies]
        manifest = fed.manifest(fed.document(agencies=entries, revocations=[revoked]))
        assert _cause(manifest, fed) == "recipient_key_unavailable"

    def test_an_expired_recipient_certificate_is_named_as_such(self) -> None:
        """A current recipient key under an expired certificate: recipient_certificate_expired."""
        fed = Federation()
        manifest = _manifest(fed, syn_council={"certificate": _expired_cert(fed, RECIPIENT, 41)})
        assert _cause(manifest, fed) == "recipient_certificate_expired"

    def test_our_certificate_is_checked_before_the_recipient(self) -> None:
        """Both certificates expired and the recipient's key lapsed: ours is named (rule order)."""
        fed = Federation()
        manifest = _manifest(
            fed,
            syn_police={"certificate": _expired_cert(fed, SENDER, 40)},
            syn_council={"certificate": _expired_cert(fed, RECIPIENT, 41),
                         "announcements": [_lapsed_announcement(fed, RECIPIENT)]},
        )  # fmt: skip
        assert _cause(manifest, fed) == "sender_certificate_expired"

    def test_the_recipient_key_is_checked_before_its_certificate(self) -> None:
        """Recipient key lapsed and certificate expired: the key is named (rule order)."""
        fed = Federation()
        manifest = _manifest(
            fed,
            syn_council={"certificate": _expired_cert(fed, RECIPIENT, 41),
                         "announcements": [_lapsed_announcement(fed, RECIPIENT)]},
        )  # fmt: skip
        assert _cause(manifest, fed) == "recipient_key_unavailable"
