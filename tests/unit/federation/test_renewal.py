"""Certificate renewal and root rotation in the core (``federation.renewal``,
``federation.manifest`` rule 6; issue 15.3): who may ask, what a renewal covers, which roots count.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509

from federation import pki
from federation.canonical import b64url_encode
from federation.envelope import seal
from federation.errors import EnvelopeRejected, ManifestRejected, RenewalRefused
from federation.keys import SigningKey
from federation.manifest import Manifest, verify_manifest
from federation.receive import open_envelope
from federation.renewal import (
    judge_renewal,
    parse_renewal,
    renewal_due,
    renewed_window,
    sign_renewal,
)
from tests.unit.federation.helpers import NOW, Federation, seed_key

FED = Federation()
POLICE = FED.agencies["syn-police"]
COUNCIL = FED.agencies["syn-council"]


def _manifest(fed: Federation = FED, *, now: Any = NOW, **certs: x509.Certificate) -> Manifest:
    """A manifest of ``fed`` whose agencies carry ``certs`` (agency id -> certificate)."""
    agencies = [
        fed.entry(a, certificate=b64url_encode(pki.certificate_to_der(certs[a])))
        if a in certs
        else fed.entry(a)
        for a in fed.agencies
    ]
    data = fed.manifest_file(fed.document(agencies=agencies))
    return verify_manifest(
        data, root_cert=fed.root, pinned_fingerprint=fed.pin, now=now, current_serial=0
    )


def _refusal(request_key: SigningKey, *, agency: str = "syn-police", **kw: Any) -> str:
    request = sign_renewal(request_key, agency="syn-police", at=kw.pop("at", NOW))
    with pytest.raises(RenewalRefused) as info:
        judge_renewal(request, agency=agency, manifest=kw.pop("manifest", FED.manifest()), now=NOW)
    return info.value.reason


class TestJudgeRenewal:
    def test_a_request_signed_by_the_current_key_names_the_identity_to_renew(self) -> None:
        """The agency's own fresh request is accepted and names its certified key."""
        request = sign_renewal(POLICE.signing, agency="syn-police", at=NOW)
        identity = judge_renewal(request, agency="syn-police", manifest=FED.manifest(), now=NOW)
        assert bytes(identity.verify_key) == bytes(POLICE.signing.verify_key)

    def test_a_request_posted_for_another_agency_is_refused(self) -> None:
        """Police's request posted under the council's URL is ``wrong_agency``."""
        assert _refusal(POLICE.signing, agency="syn-council") == "wrong_agency"

    def test_a_request_signed_by_a_key_that_is_not_the_current_one_is_refused(self) -> None:
        """A request for police signed by the council's key is ``bad_signature``."""
        assert _refusal(COUNCIL.signing) == "bad_signature"

    def test_a_request_under_an_expired_certificate_is_refused(self) -> None:
        """Past the certificate's end only the operator's reissue helps."""
        ended = FED.issue("syn-police", POLICE.signing.verify_key, serial=90,
                          not_after=NOW - timedelta(hours=1))  # fmt: skip
        manifest = _manifest(**{"syn-police": ended})
        assert _refusal(POLICE.signing, manifest=manifest) == "certificate_expired"

    def test_a_replayed_old_request_is_stale(self) -> None:
        """A request signed an hour ago cannot be posted again now."""
        assert _refusal(POLICE.signing, at=NOW - timedelta(hours=1)) == "stale"

    def test_a_body_that_is_not_a_request_is_malformed(self) -> None:
        """Garbage is refused with ``malformed`` (400), not a crash."""
        with pytest.raises(RenewalRefused) as info:
            parse_renewal(b'{"v": 1, "agency": "syn-police"}')
        assert (info.value.reason, info.value.status) == ("malformed", 400)


class TestRenewedCertificate:
    def test_renewal_is_due_within_the_lead_time_only(self) -> None:
        """A certificate ending in 365 days is due with a 400-day lead, not a 60-day one."""
        manifest = FED.manifest()
        due = [renewal_due(manifest, "syn-police", NOW, timedelta(days=d)) for d in (60, 400)]
        assert due == [False, True]

    def test_an_envelope_signed_before_the_renewal_verifies_after_the_old_certificate_ends(
        self,
    ) -> None:
        """The renewed window contains the old one, so a frame sealed under it still opens."""
        old = FED.issue("syn-police", POLICE.signing.verify_key, serial=91,
                        not_after=NOW + timedelta(hours=1))  # fmt: skip
        frame = seal({"synthetic": True}, FED.spec(), signing_key=POLICE.signing,
                     recipient_public=COUNCIL.encryption.public, now=NOW)  # fmt: skip
        switch = NOW + timedelta(minutes=30)
        start, end = renewed_window(old, FED.root, switch, timedelta(days=365))
        new = FED.issue("syn-police", POLICE.signing.verify_key, serial=92,
                        not_before=start, not_after=end)  # fmt: skip
        later = NOW + timedelta(hours=2)  # the old certificate has ended
        opened = open_envelope(
            frame, recipient="syn-council", keyring=COUNCIL.keyring, seen=lambda _id: False,
            manifest=_manifest(now=later, **{"syn-police": new}), now=later,
        )  # fmt: skip
        assert opened.payload == {"synthetic": True}

    def test_a_certificate_reissued_from_now_would_refuse_that_envelope(self) -> None:
        """Why the window keeps the old start: a fresh window refuses in-flight envelopes."""
        frame = seal({"synthetic": True}, FED.spec(), signing_key=POLICE.signing,
                     recipient_public=COUNCIL.encryption.public, now=NOW)  # fmt: skip
        fresh = FED.issue("syn-police", POLICE.signing.verify_key, serial=93,
                          not_before=NOW + timedelta(minutes=30))  # fmt: skip
        later = NOW + timedelta(hours=2)
        with pytest.raises(EnvelopeRejected) as info:
            open_envelope(
                frame, recipient="syn-council", keyring=COUNCIL.keyring, seen=lambda _id: False,
                manifest=_manifest(now=later, **{"syn-police": fresh}), now=later,
            )  # fmt: skip
        assert info.value.reason == "sender_key_expired"


def _under_new_root(fed: Federation) -> tuple[Federation, bytes]:
    """``fed`` with a second root that re-certified the same signer and agency keys, and the
    next manifest signed under it."""
    new = dataclasses.replace(fed, root_key=SigningKey(seed_key("root 2")), agencies={})
    new.agencies = {
        a: dataclasses.replace(k, cert=new.issue(a, k.signing.verify_key, serial=50 + i))
        for i, (a, k) in enumerate(fed.agencies.items())
    }
    return new, new.manifest_file(new.document(serial=6))


class TestRootRotation:
    def test_an_agent_pinning_old_and_new_roots_accepts_a_manifest_under_the_new_root(
        self,
    ) -> None:
        """During the overlap the manifest signed under the new root is accepted."""
        new, data = _under_new_root(FED)
        manifest = verify_manifest(
            data, root_cert=FED.root, pinned_fingerprint=FED.pin, now=NOW, current_serial=5,
            also_trusted=[(new.root, new.pin)],
        )  # fmt: skip
        assert manifest.serial == 6

    def test_an_agent_pinning_old_and_new_roots_still_accepts_the_old_root(self) -> None:
        """During the overlap a manifest under the old root is accepted too."""
        new, _data = _under_new_root(FED)
        manifest = verify_manifest(
            FED.manifest_file(), root_cert=new.root, pinned_fingerprint=new.pin, now=NOW,
            current_serial=0, also_trusted=[(FED.root, FED.pin)],
        )  # fmt: skip
        assert manifest.serial == 5

    def test_after_the_old_root_is_unpinned_a_manifest_under_it_is_refused(self) -> None:
        """Removing the old root from the pins ends its overlap."""
        new, _data = _under_new_root(FED)
        with pytest.raises(ManifestRejected) as info:
            verify_manifest(
                FED.manifest_file(), root_cert=new.root, pinned_fingerprint=new.pin, now=NOW,
                current_serial=0,
            )  # fmt: skip
        assert info.value.reason == "signer_untrusted"

    def test_a_second_root_that_does_not_match_its_pin_is_refused(self) -> None:
        """An unpinned certificate offered as the next root is not trusted."""
        new, data = _under_new_root(FED)
        with pytest.raises(ManifestRejected) as info:
            verify_manifest(
                data, root_cert=FED.root, pinned_fingerprint=FED.pin, now=NOW, current_serial=5,
                also_trusted=[(new.root, FED.pin)],
            )  # fmt: skip
        assert info.value.reason == "root_not_pinned"

    def test_an_agency_certificate_from_an_unpinned_root_is_refused(self) -> None:
        """A manifest mixing in a certificate from an unpinned root is refused."""
        new, _data = _under_new_root(FED)
        stray = new.agencies["syn-police"].cert
        with pytest.raises(ManifestRejected) as info:
            _manifest(**{"syn-police": stray})
        assert info.value.reason == "certificate_untrusted"
