"""Contract with the ISA engine: what the shipped ISAs release still parses as minimised."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from federation.isa import evaluate, load_isa
from federation.minimise import minimise
from federation.referrals import RISK_LEVELS, parse_payload
from federation.synth import generate_referral

POLICIES = Path(__file__).resolve().parents[4] / "policies"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FLOWS = [
    (path, flow.id, message_type)
    for path in sorted(POLICIES.glob("*.yaml"))
    for flow in load_isa(str(path), path.read_bytes()).doc.flows
    for message_type in flow.message_types
]


class TestShippedIsas:
    def test_there_are_flows_to_check(self) -> None:
        """The policies folder holds at least one flow (else this suite proves nothing)."""
        assert FLOWS

    @pytest.mark.parametrize(("path", "flow_id", "message_type"), FLOWS)
    @pytest.mark.parametrize("level", RISK_LEVELS)
    def test_minimised_output_parses_as_minimised(
        self, path: Path, flow_id: str, message_type: str, level: str
    ) -> None:
        """evaluate -> minimise of a synthetic referral gives a valid minimised payload."""
        isa = load_isa(str(path), path.read_bytes())
        flow = next(f for f in isa.doc.flows if f.id == flow_id)
        payload = generate_referral(message_type, random.Random(level), level)  # type: ignore[arg-type]
        referral = parse_payload(message_type, payload)
        decision = evaluate(
            isa, sender=flow.sender[0], recipient=flow.to[0], purpose=flow.purpose,
            message_type=message_type, referral=referral, now=NOW,
        )
        released = minimise(payload, decision)
        if released:
            received = parse_payload(message_type, released, minimised=True)
            assert received.synthetic is True
