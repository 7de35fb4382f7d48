"""evaluate(): the decision steps, field by field, against the fake catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from federation.errors import PayloadInvalid
from federation.isa import Decision, ReferralFacts, RiskLevel, evaluate, parse_isa
from tests.unit.federation.isa.support import CLEAN_ISA, NOW, fake_catalogue, load_fake

PAYLOAD: dict[str, Any] = {
    "synthetic": True,
    "victim": {
        "name": "SYN Victim",
        "date_of_birth": "1990-05-02",
        "address": "12 Synthetic Row, QX1 4ZZ",
        "refuge_address": "SYN refuge",
        "mental_health": "SYN note",
    },
    "perpetrator": {"name": "SYN Perpetrator", "criminal_history": "SYN history"},
    "children": [{"name": "SYN Child", "date_of_birth": "2016-03-04"}],
    "dash": {"q1": "yes", "q2": "no", "score": 15},
    "incident_date": "2026-02-03",
}


def _decide(level: RiskLevel = "high", agreement: str | None = "given", reason: str | None = None,
            isa_bytes: bytes = CLEAN_ISA, now: datetime = NOW, **kw: str) -> Decision:
    isa = parse_isa("clean.yaml", isa_bytes, catalogue=fake_catalogue)  # lint checks skipped
    args = {"sender": "agency-a", "recipient": "agency-b", "purpose": "safeguarding",
            "message_type": "fake_referral"} | kw
    facts = ReferralFacts(level, PAYLOAD, agreement=agreement, reason_not_sought=reason)
    return evaluate(isa, referral=facts, now=now, **args)


def _withheld(decision: Decision) -> dict[str, str]:
    return {w.path: w.reason_code for w in decision.withheld_fields}


class TestGates:
    def test_high_risk_with_agreement_is_permitted(self) -> None:
        """The happy path: an active ISA, a matching flow, agreement given -> PERMIT."""
        decision = _decide("high")
        assert decision.outcome == "PERMIT"
        assert decision.flow_id == "a-to-b"
        assert (decision.isa_id, decision.isa_version) == ("isa-test-clean", "1.0.0")

    def test_unknown_recipient_is_denied_and_shares_nothing(self) -> None:
        """No flow for the recipient: DENY, and every field is withheld."""
        decision = _decide(recipient="agency-z")
        assert decision.outcome == "DENY"
        assert decision.shared_fields == ()
        assert set(_withheld(decision).values()) == {"denied"}

    def test_reverse_direction_is_denied(self) -> None:
        """A one-way flow does not run backwards."""
        assert _decide(sender="agency-b", recipient="agency-a").outcome == "DENY"

    def test_wrong_purpose_is_denied(self) -> None:
        """The purpose must be the flow's purpose."""
        assert _decide(purpose="marketing").outcome == "DENY"

    def test_expired_isa_is_denied(self) -> None:
        """After effective_to nothing is shared."""
        decision = _decide(now=datetime(2028, 1, 1, tzinfo=UTC))
        assert decision.outcome == "DENY"
        assert decision.reasons == ("The agreement ended on 2027-12-31.",)

    def test_isa_before_its_start_is_denied(self) -> None:
        """Before effective_from nothing is shared."""
        assert _decide(now=datetime(2025, 12, 31, tzinfo=UTC)).outcome == "DENY"

    def test_suspended_isa_is_denied(self) -> None:
        """Only an active ISA permits anything."""
        data = CLEAN_ISA.replace(b"status: active", b"status: suspended")
        decision = _decide(isa_bytes=data)
        assert decision.outcome == "DENY"
        assert "suspended" in decision.reasons[0]

    def test_standard_without_agreement_is_denied(self) -> None:
        """Standard risk requires the victim's recorded agreement (otherwise: deny)."""
        decision = _decide("standard", agreement="refused")
        assert decision.outcome == "DENY"
        assert "agreement" in decision.reasons[-1]

    def test_medium_without_agreement_goes_to_review(self) -> None:
        """The ISA says medium risk without agreement is REVIEW, not DENY."""
        assert _decide("medium", agreement="not_sought").outcome == "REVIEW"

    def test_high_without_agreement_needs_a_recorded_reason(self) -> None:
        """High risk may go ahead without agreement only with a recorded reason."""
        assert _decide("high", agreement="not_sought").outcome == "DENY"
        assert _decide("high", agreement="not_sought", reason="risk_level_high").outcome == "PERMIT"

    def test_review_level_lists_what_would_be_shared(self) -> None:
        """A REVIEW decision still shows the practitioner what would go."""
        decision = _decide("medium")
        assert decision.outcome == "REVIEW"
        assert "victim.address" in decision.shared_fields


class TestFields:
    def test_standard_releases_only_the_core_set(self) -> None:
        """At standard risk only the core field set is shared."""
        decision = _decide("standard")
        assert decision.shared_fields == ("dash.score", "synthetic", "victim.date_of_birth",
                                          "victim.name")

    def test_never_share_is_withheld_at_every_level(self) -> None:
        """The refuge address is never shared, with reason never_share."""
        for level in ("standard", "medium", "high"):
            assert _withheld(_decide(level))["victim.refuge_address"] == "never_share"

    def test_deny_fields_beat_an_allow_list(self) -> None:
        """dash.q2 matches the allowed pattern dash.q* but is in deny_fields."""
        assert _withheld(_decide("high"))["dash.q2"] == "deny_field"

    def test_transforms_are_reported_for_shared_fields(self) -> None:
        """The decision names each transform it will apply."""
        assert _decide("high").transforms == {
            "victim.date_of_birth": "age_band",
            "victim.address": "postcode_district",
        }

    def test_special_category_needs_the_senders_condition(self) -> None:
        """A sender without Art 9 + Sch 1 (or Sch 8) keeps special-category fields back."""
        data = CLEAN_ISA.replace(b"        sch8: [sch8_p4_safeguarding]\n", b"")
        withheld = _withheld(_decide("high", isa_bytes=data))
        assert withheld["victim.mental_health"] == "no_special_category_condition"
        assert withheld["dash.q1"] == "no_special_category_condition"

    def test_handling_travels_with_the_decision(self) -> None:
        """Obligations and catalogue labels become envelope handling strings."""
        assert _decide("high").handling == (
            "must_not_inform:perpetrator", "no_onward_disclosure", "originator_control")

    def test_lawful_basis_is_json_ready_for_both_parties(self) -> None:
        """The header carries each party's codes."""
        basis = _decide("high").lawful_basis
        assert basis["agency-a"] == {"regime": "dpa2018_part3", "sch8": ["sch8_p4_safeguarding"]}
        assert basis["agency-b"]["article6"] == "a6_1_e_public_task"

    def test_unknown_field_is_rejected(self) -> None:
        """A payload with a field the catalogue does not know is PayloadInvalid."""
        isa = load_fake()
        facts = ReferralFacts("high", PAYLOAD | {"shoe_size": 9}, agreement="given")
        with pytest.raises(PayloadInvalid) as info:
            evaluate(isa, sender="agency-a", recipient="agency-b", purpose="safeguarding",
                     message_type="fake_referral", referral=facts, now=NOW)
        assert info.value.errors == {"shoe_size": "unknown field"}


class TestDecisionsAreIndependent:
    def test_mutating_one_decision_does_not_change_the_next(self) -> None:
        """Memoised parts are copied out: a caller editing a decision cannot poison later ones."""
        isa = load_fake()
        facts = ReferralFacts("high", PAYLOAD, agreement="given")
        args = {"sender": "agency-a", "recipient": "agency-b", "purpose": "safeguarding",
                "message_type": "fake_referral"}
        first = evaluate(isa, referral=facts, now=NOW, **args)
        first.lawful_basis["agency-a"]["sch8"].append("tampered")
        first.transforms["victim.name"] = "drop"
        second = evaluate(isa, referral=facts, now=NOW, **args)
        assert second.lawful_basis["agency-a"]["sch8"] == ["sch8_p4_safeguarding"]
        assert "victim.name" not in second.transforms
