"""Golden decision tables (tests/vectors/decisions/*.json) replayed against policies/.

Each case is a synthetic referral to one ISA at one risk level with the exact expected outcome,
shared and withheld fields (with reason codes), transforms, handling and minimised payload.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from federation.canonical import parse_time
from federation.isa import evaluate, load_isa
from federation.minimise import minimise
from federation.referrals import parse_payload

ROOT = Path(__file__).resolve().parents[4]
TABLES = sorted((ROOT / "tests" / "vectors" / "decisions").glob("*.json"))
CASES = [
    pytest.param(table, index, id=f"{table.stem}-{index}")
    for table in TABLES
    for index in range(len(json.loads(table.read_text())["cases"]))
]


def _replay(table: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    path = ROOT / table["policy_file"]
    isa = load_isa(table["policy_file"], path.read_bytes())
    given = case["input"]
    referral = parse_payload(given["message_type"], given["payload"])
    decision = evaluate(isa, sender=given["sender"], recipient=given["recipient"],
                        purpose=given["purpose"], message_type=given["message_type"],
                        referral=referral, now=parse_time(given["now"]))
    return {
        "outcome": decision.outcome,
        "flow_id": decision.flow_id,
        "risk_level": decision.risk_level,
        "shared_fields": list(decision.shared_fields),
        "withheld_fields": {w.path: w.reason_code for w in decision.withheld_fields},
        "transforms": decision.transforms,
        "handling": list(decision.handling),
        "minimised": minimise(given["payload"], decision),
    }


class TestGoldenTables:
    def test_every_shipped_isa_has_a_table(self) -> None:
        """One table per ISA in policies/, each with every risk level."""
        ids = {json.loads(t.read_text())["isa"] for t in TABLES}
        shipped = {load_isa(str(p), p.read_bytes()).id for p in (ROOT / "policies").glob("*.yaml")}
        assert ids == shipped
        for table in TABLES:
            levels = {c["expected"]["risk_level"] for c in json.loads(table.read_text())["cases"]}
            assert levels == {"standard", "medium", "high"}, table.name

    def test_tables_cover_all_three_outcomes(self) -> None:
        """Across the tables PERMIT, REVIEW and DENY all occur, and never_share is exercised."""
        cases = [c for t in TABLES for c in json.loads(t.read_text())["cases"]]
        assert {c["expected"]["outcome"] for c in cases} == {"PERMIT", "REVIEW", "DENY"}
        assert any("never_share" in c["expected"]["withheld_fields"].values() for c in cases)

    @pytest.mark.parametrize(("table_path", "index"), CASES)
    def test_decision_matches_the_table(self, table_path: Path, index: int) -> None:
        """Outcome, shared and withheld sets, transforms, handling and output are as recorded."""
        table = json.loads(table_path.read_text())
        case = table["cases"][index]
        assert table["synthetic"] is True
        assert case["input"]["payload"]["synthetic"] is True
        assert _replay(table, case) == case["expected"]
