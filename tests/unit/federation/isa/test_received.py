"""check_received() for the receiving agent, and the IsaRegistry."""

from __future__ import annotations

from typing import Any

import pytest

from federation.errors import PolicyError
from federation.isa import IsaRegistry, ReferralFacts, RiskLevel, check_received, evaluate
from federation.minimise import minimise
from tests.unit.federation.isa.support import CLEAN_ISA, NOW, load_fake
from tests.unit.federation.isa.test_evaluate import PAYLOAD

ISA = load_fake()
ARGS: dict[str, Any] = {"sender": "agency-a", "recipient": "agency-b", "purpose": "safeguarding",
                        "message_type": "fake_referral"}


def _sent(level: str) -> dict[str, Any]:
    facts = ReferralFacts(level, PAYLOAD, agreement="given")  # type: ignore[arg-type]
    return minimise(PAYLOAD, evaluate(ISA, referral=facts, now=NOW, **ARGS))


class TestCheckReceived:
    @pytest.mark.parametrize("level", ["standard", "medium", "high"])
    def test_what_a_sender_minimised_passes(self, level: RiskLevel) -> None:
        """The minimised payload of a decision is within the ISA at the same level."""
        assert check_received(ISA, risk_level=level, payload=_sent(level), **ARGS) == []

    def test_a_field_released_only_at_higher_risk_is_a_violation(self) -> None:
        """A high-risk payload labelled standard carries fields standard does not allow."""
        problems = check_received(ISA, risk_level="standard", payload=_sent("high"), **ARGS)
        assert "perpetrator.name: not allowed (not_in_allow_list)" in problems
        assert "victim.address: not allowed (not_in_allow_list)" in problems

    def test_never_share_field_is_a_violation(self) -> None:
        """A refuge address in a received payload is reported, whatever the level."""
        payload = _sent("high")
        payload["victim"] = payload["victim"] | {"refuge_address": "SYN refuge"}
        problems = check_received(ISA, risk_level="high", payload=payload, **ARGS)
        assert problems == ["victim.refuge_address: not allowed (never_share)"]

    def test_untransformed_value_is_a_violation(self) -> None:
        """A full date of birth where the ISA requires an age band is reported."""
        payload = _sent("high")
        payload["victim"] = payload["victim"] | {"date_of_birth": "1990-05-02"}
        problems = check_received(ISA, risk_level="high", payload=payload, **ARGS)
        assert problems == ["victim.date_of_birth: not in the form the ISA requires (age_band)"]

    def test_unknown_field_is_a_violation(self) -> None:
        """A field outside the catalogue is reported."""
        payload = _sent("high") | {"shoe_size": 9}
        assert check_received(ISA, risk_level="high", payload=payload, **ARGS) == [
            "shoe_size: unknown field"]

    def test_no_flow_is_a_violation(self) -> None:
        """A message in the wrong direction is reported as not covered by any flow."""
        args = ARGS | {"sender": "agency-b", "recipient": "agency-a"}
        [problem] = check_received(ISA, risk_level="high", payload=_sent("high"), **args)
        assert problem.startswith("no flow in isa-test-clean covers agency-b -> agency-a")


class TestIsaRegistry:
    def test_get_and_resolve_flow(self) -> None:
        """The registry finds an ISA by id and the flow covering a message."""
        registry = IsaRegistry([ISA])
        assert registry.get("isa-test-clean") is ISA
        flow = registry.resolve_flow("agency-a", "agency-b", "isa-test-clean", "safeguarding",
                                     "fake_referral")
        assert flow is not None
        assert flow.id == "a-to-b"

    def test_unknown_isa_or_flow_resolves_to_none(self) -> None:
        """Deny by default: nothing matches -> None."""
        registry = IsaRegistry([ISA])
        assert registry.get("isa-nope") is None
        assert registry.resolve_flow("agency-b", "agency-a", "isa-test-clean", "safeguarding",
                                     "fake_referral") is None
        assert registry.resolve_flow("agency-a", "agency-b", "isa-nope", "safeguarding",
                                     "fake_referral") is None

    def test_duplicate_ids_are_refused(self) -> None:
        """Two ISAs with one id cannot both be registered."""
        twin = load_fake(CLEAN_ISA.replace(b"SYNTHETIC test agreement", b"SYNTHETIC twin"),
                         source="twin.yaml")
        with pytest.raises(PolicyError) as info:
            IsaRegistry([ISA, twin])
        assert str(info.value.problems[0]) == (
            "twin.yaml:4: duplicate ISA id 'isa-test-clean' (also in clean.yaml)")
        registry = IsaRegistry([ISA])
        with pytest.raises(PolicyError):
            registry.add(twin)
