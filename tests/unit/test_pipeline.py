"""The pipeline's pure steps: prepare (decide, minimise, spec) and accept (receiver checks 9-12)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from federation.envelope import Opened, seal_envelope
from federation.errors import EnvelopeRejected, PayloadInvalid
from federation.isa import Isa, IsaRegistry, load_isa
from federation.keys import EncryptionKey, SigningKey
from federation.pipeline import Prepared, accept, expected_lawful_basis, prepare
from federation.synth import generate_referral

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FLOW = {
    "sender": "assist",
    "recipient": "marac-coordinator",
    "purpose": "marac_risk_management",
    "message_type": "marac_referral",
}


@pytest.fixture(scope="module")
def isa() -> Isa:
    path = POLICIES / "marac-referrals.yaml"
    return load_isa(str(path), path.read_bytes())


def prepared(isa: Isa, level: str, **changes: Any) -> Prepared:
    payload = generate_referral("marac_referral", random.Random(3), risk_level=level)
    payload.update(changes)
    return prepare(isa, **FLOW, payload=payload, now=NOW, ttl=timedelta(hours=1))


def opened(prep: Prepared, payload: dict[str, Any] | None = None, **header: Any) -> Opened:
    assert prep.spec is not None
    sealed = seal_envelope(
        prep.payload, prep.spec, signing_key=SigningKey.generate(),
        recipient_public=EncryptionKey.generate().public, now=NOW,
    )  # fmt: skip
    view = sealed.header.model_copy(update=header)
    return Opened(view, b"", prep.payload if payload is None else payload, "0" * 64)


class TestPrepare:
    def test_a_permitted_referral_gets_a_spec_with_the_isas_lawful_basis_tags(
        self, isa: Isa
    ) -> None:
        """The header's lawful-basis tags are exactly what the ISA states for both parties."""
        prep = prepared(isa, "high")
        assert prep.decision.outcome == "PERMIT"
        assert prep.spec is not None
        assert prep.spec.lawful_basis == expected_lawful_basis(
            isa, "marac_risk_management", "assist", "marac-coordinator"
        )
        assert any(key.startswith("assist.") for key in prep.spec.lawful_basis)

    def test_a_denied_referral_gets_no_spec_and_no_payload(self, isa: Isa) -> None:
        """Standard risk MARAC referrals are not shared: nothing to seal."""
        prep = prepared(isa, "standard")
        assert prep.decision.outcome != "PERMIT"
        assert (prep.spec, prep.payload) == (None, {})

    def test_an_invalid_payload_is_payload_invalid(self, isa: Isa) -> None:
        """A field no message type has is refused before any decision."""
        with pytest.raises(PayloadInvalid):
            prepared(isa, "high", shoe_size=9)


class TestAccept:
    def test_a_conforming_envelope_is_accepted(self, isa: Isa) -> None:
        """What prepare produced passes every receiver check."""
        prep = prepared(isa, "high")
        accepted = accept(opened(prep), IsaRegistry([isa]))
        assert accepted.payload == prep.payload

    def test_an_isa_we_do_not_hold_is_isa_mismatch(self, isa: Isa) -> None:
        """Our own registry must hold the cited ISA."""
        with pytest.raises(EnvelopeRejected) as caught:
            accept(opened(prepared(isa, "high")), IsaRegistry())
        assert caught.value.reason == "isa_mismatch"

    def test_wrong_lawful_basis_tags_are_rejected(self, isa: Isa) -> None:
        """A sender claiming another legal footing than the ISA's is refused."""
        envelope = opened(prepared(isa, "high"), lawful_basis={"assist.article6": "a6_1_a"})
        with pytest.raises(EnvelopeRejected) as caught:
            accept(envelope, IsaRegistry([isa]))
        assert caught.value.reason == "lawful_basis_mismatch"

    def test_a_field_the_isa_withholds_is_an_isa_violation(self, isa: Isa) -> None:
        """A medium-risk envelope carrying high-risk-only fields is refused, naming the paths."""
        prep = prepared(isa, "high")
        envelope = opened(prep, risk="medium")
        with pytest.raises(EnvelopeRejected) as caught:
            accept(envelope, IsaRegistry([isa]))
        assert caught.value.reason == "isa_violation"
        assert "not allowed" in caught.value.detail

    def test_a_payload_that_breaks_its_schema_is_payload_invalid(self, isa: Isa) -> None:
        """Unknown fields in the decrypted payload are refused."""
        prep = prepared(isa, "high")
        with pytest.raises(EnvelopeRejected) as caught:
            accept(opened(prep, {**prep.payload, "shoe_size": 9}), IsaRegistry([isa]))
        assert caught.value.reason == "payload_invalid"
