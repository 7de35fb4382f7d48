"""evaluate_and_minimise is exactly evaluate followed by minimise, in one walk."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.errors import PayloadInvalid
from federation.isa import Isa, evaluate, evaluate_and_minimise, load_isa
from federation.minimise import minimise
from federation.referrals import RISK_LEVELS, parse_payload, payload_dict
from federation.synth import EDGE_CASES, generate_referral

POLICIES = Path(__file__).resolve().parents[4] / "policies"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _load() -> list[Isa]:
    return [load_isa(str(p), p.read_bytes()) for p in sorted(POLICIES.glob("*.yaml"))]


ISAS = _load()
#: (isa, sender, recipient, purpose, message type) for every flow of every shipped ISA
FLOWS = [
    (isa, sender, recipient, flow.purpose, kind)
    for isa in ISAS
    for flow in isa.doc.flows
    for sender in flow.sender
    for recipient in flow.to
    for kind in flow.message_types
]


def both(flow: tuple[Any, ...], referral: Any) -> tuple[Any, Any]:
    """(evaluate then minimise, evaluate_and_minimise) for one flow and referral."""
    isa, sender, recipient, purpose, kind = flow
    kwargs = {"sender": sender, "recipient": recipient, "purpose": purpose,
              "message_type": kind, "referral": referral, "now": NOW}  # fmt: skip
    decision = evaluate(isa, **kwargs)
    separate = (decision, minimise(payload_dict(referral), decision))
    return separate, evaluate_and_minimise(isa, **kwargs)


class TestEvaluateAndMinimise:
    @settings(max_examples=150, deadline=None)
    @given(
        index=st.integers(0, len(FLOWS) - 1),
        level=st.sampled_from(RISK_LEVELS),
        edge=st.sampled_from((None, *EDGE_CASES)),
        seed=st.integers(0, 10_000),
    )
    def test_equals_evaluate_then_minimise_for_every_flow_level_and_edge_case(
        self, index: int, level: str, edge: str | None, seed: int
    ) -> None:
        """Same Decision and same minimised payload as the two-step path, for any referral."""
        if edge == "below_threshold_judgement" and level == "standard":
            level = "medium"  # a judgement raises the level: it cannot be standard
        flow = FLOWS[index]
        payload = generate_referral(flow[4], random.Random(seed), level, edge=edge)  # type: ignore[arg-type]
        separate, fused = both(flow, parse_payload(flow[4], payload))
        assert fused == separate

    def test_another_senders_flow_is_denied_with_nothing_copied(self) -> None:
        """A gate failure (no flow for this sender) gives DENY and an empty payload."""
        isa, _, recipient, purpose, kind = FLOWS[0]
        payload = generate_referral(kind, random.Random(1), "high")
        decision, copied = evaluate_and_minimise(
            isa, sender="nobody-here", recipient=recipient, purpose=purpose,
            message_type=kind, referral=parse_payload(kind, payload), now=NOW,
        )  # fmt: skip
        assert (decision.outcome, copied) == ("DENY", {})

    def test_an_unknown_field_is_payload_invalid_as_in_evaluate(self) -> None:
        """The one walk still refuses fields the catalogue does not know."""
        from federation.isa import ReferralFacts

        isa, sender, recipient, purpose, kind = FLOWS[0]
        facts = ReferralFacts("high", {"synthetic": True, "shoe_size": 9})
        with pytest.raises(PayloadInvalid):
            evaluate_and_minimise(isa, sender=sender, recipient=recipient, purpose=purpose,
                                  message_type=kind, referral=facts, now=NOW)  # fmt: skip
