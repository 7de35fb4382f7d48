"""Write the golden decision tables: ``python -m tests.vectors.decisions.make_vectors``.

The expected values are what the engine decides today. Regenerating them is a change to the
federation's policy behaviour: a reviewer must read the diff of every ``*.json`` here before it
is committed (who gets which field at which risk level, and why).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from federation.isa import Flow, Isa, evaluate, load_isa
from federation.minimise import minimise
from federation.referrals import parse_payload
from federation.synth import generate_referral

HERE = Path(__file__).resolve().parent
POLICIES = HERE.parents[2] / "policies"
NOW = "2026-06-01T12:00:00Z"


def _case(isa: Isa, flow: Flow, mt: str, level: str, consent: dict[str, Any] | None,
          sender: str, recipient: str, seed: int, edge: str | None = None) -> dict[str, Any]:
    from federation.canonical import parse_time

    payload = generate_referral(mt, random.Random(seed), level, edge=edge)  # type: ignore[arg-type]
    if consent is not None:
        payload["consent"] = consent
    referral = parse_payload(mt, payload)
    decision = evaluate(isa, sender=sender, recipient=recipient, purpose=flow.purpose,
                        message_type=mt, referral=referral, now=parse_time(NOW))
    return {
        "input": {"sender": sender, "recipient": recipient, "purpose": flow.purpose,
                  "message_type": mt, "now": NOW, "payload": payload},
        "expected": {
            "outcome": decision.outcome,
            "flow_id": decision.flow_id,
            "risk_level": decision.risk_level,
            "shared_fields": list(decision.shared_fields),
            "withheld_fields": {w.path: w.reason_code for w in decision.withheld_fields},
            "transforms": decision.transforms,
            "handling": list(decision.handling),
            "minimised": minimise(payload, decision),
        },
    }


_AGREED = {"victim_aware": "yes", "agreement": "given"}
_REFUSED = {"victim_aware": "yes", "agreement": "refused"}
_WITH_REASON = {"victim_aware": "no", "agreement": "not_sought",
                "reason_not_sought": "seeking_would_increase_risk"}


def _cases(isa: Isa) -> list[dict[str, Any]]:
    cases = []
    for n, flow in enumerate(isa.doc.flows):
        for mt in flow.message_types:
            s, r = flow.sender[0], flow.to[0]
            for k, level in enumerate(("standard", "medium", "high")):
                cases.append(_case(isa, flow, mt, level, _AGREED, s, r, 100 * n + k))
            cases.append(_case(isa, flow, mt, "standard", _REFUSED, s, r, 100 * n + 3))
            cases.append(_case(isa, flow, mt, "high", _WITH_REASON, s, r, 100 * n + 4))
            cases.append(_case(isa, flow, mt, "high", _AGREED, r, s, 100 * n + 5))  # reversed
            cases.append(_case(isa, flow, mt, "high", _AGREED, s, r, 100 * n + 6, "refuge_address"))
    return cases


def main() -> None:
    for path in sorted(POLICIES.glob("*.yaml")):
        isa = load_isa(f"policies/{path.name}", path.read_bytes())
        cases = _cases(isa)
        table = {"isa": isa.id, "version": isa.version, "policy_file": f"policies/{path.name}",
                 "synthetic": True, "cases": cases}
        out = HERE / f"{isa.id}.json"
        out.write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        print(f"{out.name}: {len(cases)} cases")


if __name__ == "__main__":
    main()
