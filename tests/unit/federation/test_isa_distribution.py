"""ISA distribution (issue 15.5): a format-2 manifest carries each ISA's document and the
version it replaces for a grace window; the receiver judges a message by the version it cites.

Manifests are verified and envelopes received at fixed times around ``SWITCH`` (the moment
1.1.0 replaces 1.0.0) and ``ACCEPT_UNTIL`` (the end of 1.0.0's grace), never the wall clock.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from federation import pki
from federation.canonical import b64url_encode, canonical_json
from federation.envelope import seal
from federation.errors import ManifestRejected
from federation.isa import IsaRegistry
from federation.manifest import (
    FORMAT,
    MANIFEST_TAG,
    Manifest,
    build_manifest,
    diff_manifests,
    verify_manifest,
)
from federation.pipeline import prepare
from federation.receive import Accepted, ReceiverFacts, Refused, receive
from federation.synth import generate_referral
from tests.unit.federation.isa_versions import (
    ACCEPT_UNTIL,
    FED,
    NOW,
    RECIPIENT,
    SENDER,
    SWITCH,
    V1,
    V2,
    Version,
    document,
    entry,
    manifest,
)

SECOND = timedelta(seconds=1)


def verified(data: bytes, at: datetime = NOW) -> Manifest:
    return verify_manifest(data, root_cert=FED.root, pinned_fingerprint=FED.pin, now=at,
                           current_serial=0)  # fmt: skip


def refused_manifest(data: bytes, at: datetime = NOW) -> ManifestRejected:
    with pytest.raises(ManifestRejected) as refused:
        verified(data, at)
    return refused.value


class TestFormat2Manifest:
    def test_the_version_in_force_changes_at_the_switch_without_a_new_manifest(self) -> None:
        """One manifest: its ISAs in force are 1.0.0 until SWITCH, 1.1.0 from it."""
        held = manifest()
        before, after = held.isas_at(SWITCH - SECOND), held.isas_at(SWITCH)
        assert before is not None
        assert after is not None
        assert [i.version for i in before.in_force()] == ["1.0.0"]
        assert [i.version for i in after.in_force()] == ["1.1.0"]

    def test_a_document_not_matching_its_pin_refuses_the_whole_manifest(self) -> None:
        """A re-signed manifest whose 1.1.0 document had one byte changed: refused with
        isa_document_mismatch (the signature is good: only the pin catches it)."""
        tampered = V2.data.replace(b"advocacy", b"advocacz", 1)
        doc = document(entry(V1, superseded=SWITCH), entry(V2, document=b64url_encode(tampered)))
        refused = refused_manifest(FED.manifest_file(doc))
        assert refused.reason == "isa_document_mismatch"
        assert V2.isa.id in refused.message

    def test_a_format_1_manifest_never_carries_documents(self) -> None:
        """A signed v 1 document with a document in it: malformed (step 5), since agents
        before format 2 could not read it."""
        body = document(entry(V2)).to_json() | {"v": 1}
        signature = FED.signer_key.sign(MANIFEST_TAG + canonical_json(body)).signature
        data = canonical_json({
            "format": FORMAT, "manifest": body, "signature": b64url_encode(signature),
            "signer_certificate": b64url_encode(pki.certificate_to_der(FED.signer_cert)),
        }) + b"\n"  # fmt: skip
        assert refused_manifest(data).reason == "malformed"

    def test_a_format_2_entry_without_its_document_is_malformed(self) -> None:
        """Format 2 carries every ISA it lists: an entry without one is refused."""
        with pytest.raises(ValueError, match="no document"):
            document(entry(V2, document=None))

    def test_a_format_1_file_has_exactly_the_fields_older_agents_know(self) -> None:
        """The build writes no document, superseded_at or accept_until into format 1."""
        bare = entry(V2, document=None)
        body = document(bare, v=1).to_json()
        assert set(body["isas"][0]) == {"id", "version", "sha256", "parties", "status",
                                        "effective_from", "effective_to"}  # fmt: skip

    def test_the_change_log_names_the_new_version_and_the_grace(self) -> None:
        """diff_manifests (the agent's log and audit): the version change and the window."""
        old, new = document(entry(V1), serial=4), document(entry(V1, superseded=SWITCH), entry(V2))
        lines = diff_manifests(old, new)
        assert f"isa {V1.isa.id}: version '1.0.0' -> '1.1.0'" in lines
        assert any("v1.0.0 superseded at" in line and "accepted until" in line for line in lines)


def _frame(version: Version, sealed_at: datetime) -> bytes:
    """A police concern sealed under ``version`` at ``sealed_at``, living 8 days."""
    payload = generate_referral("police_concern", random.Random(5), risk_level="high")
    prepared = prepare(
        version.isa, sender=SENDER, recipient=RECIPIENT, purpose="advocacy_after_charge",
        message_type="police_concern", payload=payload, now=sealed_at, ttl=timedelta(days=8),
    )  # fmt: skip
    assert prepared.spec is not None, prepared.decision.reasons
    return seal(
        prepared.payload, prepared.spec, signing_key=FED.agencies[SENDER].signing,
        recipient_public=FED.agencies[RECIPIENT].encryption.public, now=sealed_at,
    )  # fmt: skip


def _receive(frame: bytes, held: Manifest, at: datetime) -> Accepted | Refused:
    registry = held.isas_at(at)
    assert registry is not None
    facts = ReceiverFacts(recipient=RECIPIENT, manifest=held, registry=registry,
                          keyring=FED.agencies[RECIPIENT].keyring)  # fmt: skip
    return receive(frame, user_id=SENDER, facts=facts, now=at, seen=lambda _id: False)


def _reason(result: Any) -> str:
    return result.reason if isinstance(result, Refused) else "accepted"


class TestReceiveByTheCitedVersion:
    def test_a_message_sealed_under_the_replaced_version_is_accepted_within_its_grace(
        self,
    ) -> None:
        """Sealed under 1.0.0 a second before the switch, received on the grace's last second:
        accepted, judged by 1.0.0's text though 1.1.0 is in force by then."""
        frame = _frame(V1, SWITCH - SECOND)
        result = _receive(frame, manifest(), ACCEPT_UNTIL - SECOND)
        assert isinstance(result, Accepted), _reason(result)
        assert result.header.isa.version == "1.0.0"

    def test_the_same_message_arriving_after_the_grace_is_isa_superseded(self) -> None:
        """Arriving at accept_until: refused with the named reason, and answered (the sender is
        authenticated, so it gets a signed rejection naming isa_superseded)."""
        result = _receive(_frame(V1, SWITCH - SECOND), manifest(), ACCEPT_UNTIL)
        assert isinstance(result, Refused)
        assert (result.reason, result.reply_to is not None) == ("isa_superseded", True)

    def test_a_message_sealed_under_the_replaced_version_after_the_switch_is_refused(
        self,
    ) -> None:
        """A sender whose manifest is too old seals 1.0.0 at the switch: isa_superseded."""
        result = _receive(_frame(V1, SWITCH), manifest(), SWITCH + SECOND)
        assert _reason(result) == "isa_superseded"

    def test_the_new_version_is_accepted_before_it_governs(self) -> None:
        """A sender that switched early (its clock ahead) seals 1.1.0 before the switch: every
        receiver holding the manifest has 1.1.0 already, so it is accepted."""
        result = _receive(_frame(V2, NOW), manifest(), NOW + SECOND)
        assert _reason(result) == "accepted"

    def test_a_version_newer_than_the_receivers_manifest_is_isa_version_unknown(self) -> None:
        """The receiver still holds a manifest listing only 1.0.0: isa_version_unknown (its
        agent fetches the manifest once before refusing), never a generic reason."""
        behind = manifest(entry(V1))
        result = _receive(_frame(V2, NOW), behind, NOW + SECOND)
        assert _reason(result) == "isa_version_unknown"

    def test_a_receiver_without_the_cited_text_refuses_at_step_9(self) -> None:
        """The manifest lists 1.0.0 but the receiver holds only 1.1.0's text: isa_mismatch."""
        frame = _frame(V1, NOW)
        facts = ReceiverFacts(recipient=RECIPIENT, manifest=manifest(),
                              registry=IsaRegistry([V2.isa]),
                              keyring=FED.agencies[RECIPIENT].keyring)  # fmt: skip
        result = receive(frame, user_id=SENDER, facts=facts, now=NOW, seen=lambda _id: False)
        assert _reason(result) == "isa_mismatch"


def test_build_manifest_signs_what_to_json_writes() -> None:
    """A format-2 manifest round-trips: what is signed is what verifies, documents included."""
    doc = document(entry(V1, superseded=SWITCH), entry(V2))
    data = build_manifest(doc, signer_key=FED.signer_key, signer_cert=FED.signer_cert)
    assert verified(data).document == doc
