"""How many ISA decisions per second one core makes: evaluate + minimise of a MARAC referral.

    .venv/bin/python benchmarks/policy_speed.py [--seconds 3]

Target (issue 2): >= 20,000 evaluate + minimise per second on one core for a typical high-risk
MARAC referral (about 70 fields, full DASH, children). Two figures are printed:

- ``one walk``: what the sending agent runs (``federation.pipeline.prepare``):
  ``evaluate_and_minimise``, which decides and minimises in one walk over the payload and is held
  equal to evaluate followed by minimise by a property test
  (``tests/unit/federation/isa/test_decide.py``);
- ``facts``: ``evaluate`` then ``minimise`` from the payload dict (two walks);
- ``referral``: from the parsed pydantic referral, including ``payload_dict`` (a model dump).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from federation.isa import ReferralFacts, evaluate, evaluate_and_minimise, load_isa
from federation.minimise import minimise
from federation.referrals import parse_payload, payload_dict
from federation.synth import generate_referral

POLICY = Path(__file__).resolve().parents[1] / "policies" / "marac-referrals.yaml"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TARGET = 20_000


def _rate(step: Callable[[], object], seconds: float) -> tuple[float, int]:
    for _ in range(200):  # warm the plan memo and caches
        step()
    count, start = 0, time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(500):
            step()
        count += 500
        now = time.process_time()
        if now >= deadline:
            return count / (now - start), count


def _calibration() -> float:
    """CPU microseconds for ``sum(range(1000))``: a reference loop to compare machines by."""
    start = time.process_time()
    for _ in range(20_000):
        sum(range(1000))
    return (time.process_time() - start) / 20_000 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    isa = load_isa(str(POLICY), POLICY.read_bytes())
    raw = generate_referral("marac_referral", random.Random(7), "high")
    referral = parse_payload("marac_referral", raw)
    payload = payload_dict(referral)
    consent = referral.consent
    facts = ReferralFacts(
        referral.risk_level,
        payload,
        agreement=consent.agreement if consent else None,
        reason_not_sought=consent.reason_not_sought if consent else None,
    )
    kwargs = {
        "sender": "police-scotland",
        "recipient": "marac-coordinator",
        "purpose": "marac_risk_management",
        "message_type": "marac_referral",
        "now": NOW,
    }

    def with_facts() -> object:
        return minimise(payload, evaluate(isa, referral=facts, **kwargs))  # type: ignore[arg-type]

    def with_referral() -> object:
        decision = evaluate(isa, referral=referral, **kwargs)  # type: ignore[arg-type]
        return minimise(payload_dict(referral), decision)

    def one_walk() -> object:
        return evaluate_and_minimise(isa, referral=facts, **kwargs)  # type: ignore[arg-type]

    decision = evaluate(isa, referral=facts, **kwargs)  # type: ignore[arg-type]
    print(
        f"MARAC referral: {len(decision.shared_fields)} fields shared, "
        f"{len(decision.withheld_fields)} withheld, outcome {decision.outcome}"
    )
    print(
        f"machine: sum(range(1000)) takes {_calibration():.1f} us of CPU "
        "(a reference loop, to compare machines)"
    )
    steps = (("one walk", one_walk), ("facts", with_facts), ("referral", with_referral))
    for name, step in steps:
        rate, count = _rate(step, args.seconds)
        verdict = "meets" if rate >= TARGET else "BELOW"
        print(
            f"{name:9s} evaluate+minimise: {rate:,.0f}/s per core "
            f"({count:,} in {args.seconds:.0f}s CPU; {verdict} target {TARGET:,}/s)"
        )


if __name__ == "__main__":
    main()
