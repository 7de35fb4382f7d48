"""Properties of the shipped ISAs (policies/*.yaml) over synthetic referrals (real catalogue)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import PayloadInvalid
from federation.isa import (
    RISK_LEVELS,
    Flow,
    Isa,
    ReferralFacts,
    evaluate,
    labels_for,
    load_isa,
    never_share_paths,
)
from federation.minimise import minimise
from federation.referrals import parse_payload
from federation.synth import generate_referral
from tests.unit.federation.isa.support import NOW

POLICIES = Path(__file__).resolve().parents[4] / "policies"
ISAS = [load_isa(str(p), p.read_bytes()) for p in sorted(POLICIES.glob("*.yaml"))]
CASES = [
    (isa, flow, mt, sender)
    for isa in ISAS
    for flow in isa.doc.flows
    for mt in flow.message_types
    for sender in flow.sender
]
SEEDS = st.integers(min_value=0, max_value=2**32)


def _shared(isa: Isa, flow: Flow, mt: str, sender: str, level: str,
            payload: dict[str, Any]) -> set[str]:
    facts = ReferralFacts(level, payload, agreement="given",  # type: ignore[arg-type]
                          reason_not_sought="risk_level_high")
    decision = evaluate(isa, sender=sender, recipient=flow.to[0], purpose=flow.purpose,
                        message_type=mt, referral=facts, now=NOW)
    return set() if decision.outcome == "DENY" else set(decision.shared_fields)


class TestShippedIsas:
    def test_every_required_isa_is_shipped(self) -> None:
        """The five agreements the issue names are in policies/."""
        assert {isa.id for isa in ISAS} == {
            "isa-marac-referrals", "isa-police-assist-advocacy", "isa-police-council-concerns",
            "isa-caledonian-partner-contact", "isa-womens-aid-police"}

    def test_caledonian_flow_is_one_way(self) -> None:
        """Nothing about the partner flows back from the women's service to the men's."""
        isa = next(i for i in ISAS if i.id == "isa-caledonian-partner-contact")
        assert [(f.sender, f.to) for f in isa.doc.flows] == [(["caledonian-mens"],
                                                              ["caledonian-womens"])]
        facts = ReferralFacts("high", {"synthetic": True}, agreement="given")
        decision = evaluate(isa, sender="caledonian-womens", recipient="caledonian-mens",
                            purpose="partner_safety", message_type="caledonian_partner_contact",
                            referral=facts, now=NOW)
        assert decision.outcome == "DENY"


class TestReleaseProperties:
    @settings(max_examples=15, deadline=None)
    @given(SEEDS)
    def test_released_set_grows_with_risk(self, seed: int) -> None:
        """For a fixed flow: standard within medium within high (DENY counts as nothing)."""
        for isa, flow, mt, sender in CASES:
            payload = generate_referral(mt, random.Random(seed), "high")
            shared = [_shared(isa, flow, mt, sender, lvl, payload) for lvl in RISK_LEVELS]
            assert shared[0] <= shared[1] <= shared[2], (isa.id, flow.id, sender)

    @settings(max_examples=15, deadline=None)
    @given(SEEDS, st.sampled_from(RISK_LEVELS))
    def test_no_isa_releases_a_never_share_field(self, seed: int, level: str) -> None:
        """Neither the decision nor the minimised payload ever holds a never_share field."""
        for isa, flow, mt, sender in CASES:
            payload = generate_referral(mt, random.Random(seed), "high", edge="refuge_address")
            never = never_share_paths(isa, labels_for(isa, mt) or {})
            assert not _shared(isa, flow, mt, sender, level, payload) & never
            facts = ReferralFacts(level, payload, agreement="given")  # type: ignore[arg-type]
            decision = evaluate(isa, sender=sender, recipient=flow.to[0], purpose=flow.purpose,
                                message_type=mt, referral=facts, now=NOW)
            out = minimise(payload, decision)
            assert "refuge_address" not in str(out)
            assert "refuge_location" not in str(out)

    @settings(max_examples=25, deadline=None)
    @given(SEEDS, st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
    def test_a_referral_with_an_unknown_field_is_rejected(self, seed: int, name: str) -> None:
        """Both the parser and the ISA engine refuse a field the catalogue does not know."""
        isa, flow, mt, sender = CASES[seed % len(CASES)]
        payload = generate_referral(mt, random.Random(seed), "high")
        key = f"zz_{name}"
        payload[key] = "SYN"
        with pytest.raises(PayloadInvalid):
            parse_payload(mt, payload)
        facts = ReferralFacts("high", payload, agreement="given")
        with pytest.raises(PayloadInvalid) as info:
            evaluate(isa, sender=sender, recipient=flow.to[0], purpose=flow.purpose,
                     message_type=mt, referral=facts, now=NOW)
        assert key in info.value.errors
