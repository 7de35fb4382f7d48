"""The pipeline's pure sending step: prepare (decide, minimise, spec). The receiver's checks are
tests/unit/federation/test_receive.py."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from federation.errors import PayloadInvalid
from federation.isa import Isa, load_isa
from federation.pipeline import Prepared, expected_lawful_basis, prepare
from federation.synth import generate_referral

POLICIES = Path(__file__).resolve().parents[3] / "policies"
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
