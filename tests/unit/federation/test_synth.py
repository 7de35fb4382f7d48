"""Synthetic data: deterministic, obviously fake, always valid, and at the requested risk."""

from __future__ import annotations

import json
import random
import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.referrals import MESSAGE_TYPES, RISK_LEVELS, parse_payload
from federation.referrals.common import RiskLevel
from federation.synth import EDGE_CASES, dash_answers, generate_batch, generate_referral

ALL_TYPES = sorted(MESSAGE_TYPES)
DASH_TYPES = ("dash_risk_assessment", "marac_referral")


def strings(value: Any) -> list[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, RiskLevel, str | None, int]:
    """A message type, level, edge case and seed that generate_referral accepts."""
    kind = draw(st.sampled_from(ALL_TYPES))
    edge = draw(st.sampled_from((None, *EDGE_CASES)))
    levels = RISK_LEVELS[1:] if edge == "below_threshold_judgement" else RISK_LEVELS
    return kind, draw(st.sampled_from(levels)), edge, draw(st.integers(0, 2**32))


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(requests())
    def test_every_record_parses_at_the_requested_level(
        self, request: tuple[str, RiskLevel, str | None, int]
    ) -> None:
        """Any seed, type, level and edge case gives a valid payload at that risk level."""
        kind, level, edge, seed = request
        payload = generate_referral(kind, random.Random(seed), level, edge=edge)
        assert parse_payload(kind, payload).risk_level == level

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from(RISK_LEVELS), st.integers(0, 2**32))
    def test_dash_score_lies_in_the_band(self, level: RiskLevel, seed: int) -> None:
        """The yes count of generated answers bands to the requested level."""
        payload = generate_referral("dash_risk_assessment", random.Random(seed), level)
        referral = parse_payload("dash_risk_assessment", payload)
        assert referral.dash.banded_level == level  # type: ignore[attr-defined]

    @settings(max_examples=25, deadline=None)
    @given(st.integers(0, 2**32), st.integers(0, 40))
    def test_batches_parse_for_any_seed(self, seed: int, count: int) -> None:
        """Every record of any batch is valid and marked synthetic."""
        batch = generate_batch(count, seed)
        assert len(batch) == count
        assert all(parse_payload(kind, p).synthetic for kind, p in batch)


class TestDeterminism:
    def test_same_seed_same_records(self) -> None:
        """A seed reproduces its batch exactly."""
        assert generate_batch(20, 42) == generate_batch(20, 42)

    def test_different_seeds_differ(self) -> None:
        """Another seed gives other records."""
        assert generate_batch(20, 42) != generate_batch(20, 43)

    def test_a_batch_covers_every_type_and_edge_case(self) -> None:
        """30 records hold all five types, each with each edge case."""
        batch = generate_batch(30, 1)
        assert {kind for kind, _ in batch} == set(ALL_TYPES)
        refuge = [p for k, p in batch if k == "support_referral" and "refuge_location" in p]
        assert len(refuge) == 1

    def test_type_filter(self) -> None:
        """--type keeps to one message type."""
        assert {kind for kind, _ in generate_batch(12, 3, "police_concern")} == {"police_concern"}


BATCH = generate_batch(60, 9)


class TestObviouslyFake:
    @pytest.fixture
    def batch(self) -> list[tuple[str, dict[str, Any]]]:
        return BATCH

    def test_every_record_is_marked_synthetic(self, batch: list[tuple[str, Any]]) -> None:
        """synthetic: true, always."""
        assert all(p["synthetic"] is True for _, p in batch)

    def test_references_start_with_syn(self, batch: list[tuple[str, Any]]) -> None:
        """Every *_ref / *_id value is a SYN- reference."""
        refs = [v for _, p in batch for k, v in _pairs(p) if k.endswith(("_ref", "_id"))]
        assert refs
        assert all(v.startswith("SYN-") for v in refs)

    def test_postcodes_are_in_the_impossible_qx_area(self, batch: list[tuple[str, Any]]) -> None:
        """Every postcode-shaped string is QX."""
        found = [
            m for _, p in batch for s in strings(p)
            for m in re.findall(r"\b[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}\b", s)
        ]
        assert found
        assert all(m.startswith("QX") for m in found)

    def test_phones_are_in_the_drama_range(self, batch: list[tuple[str, Any]]) -> None:
        """Every phone number is 07700 900xxx."""
        phones = [v for _, p in batch for k, v in _pairs(p) if k == "phone"]
        assert phones
        assert all(re.fullmatch(r"07700 900\d{3}", v) for v in phones)

    def test_emails_are_example_invalid(self, batch: list[tuple[str, Any]]) -> None:
        """Every e-mail address is at example.invalid."""
        emails = [s for _, p in batch for s in strings(p) if "@" in s]
        assert emails
        assert all(e.endswith("@example.invalid") for e in emails)

    def test_event_dates_are_in_2026(self, batch: list[tuple[str, Any]]) -> None:
        """Referral and assessment dates are future dates."""
        dates = [v for _, p in batch for k, v in _pairs(p) if k in ("referral_date", "assessed_at")]
        assert dates
        assert all(v.startswith("2026-") for v in dates)


class TestEdgeCases:
    def test_below_threshold_judgement_is_raised(self) -> None:
        """The DASH bands lower than the level its judgement gives."""
        payload = generate_referral(
            "marac_referral", random.Random(5), "high", edge="below_threshold_judgement"
        )
        dash = parse_payload("marac_referral", payload).dash  # type: ignore[attr-defined]
        assert (dash.banded_level, dash.risk_level) == ("medium", "high")
        assert payload["criteria"]["professional_judgement"] is True

    def test_below_threshold_cannot_be_standard(self) -> None:
        """Nothing is below standard."""
        with pytest.raises(ValueError, match="medium or high"):
            generate_referral("marac_referral", random.Random(5), "standard",
                              edge="below_threshold_judgement")

    @pytest.mark.parametrize("kind", ALL_TYPES)
    def test_victim_not_aware(self, kind: str) -> None:
        """Consent records that the victim does not know, and why it was not sought."""
        payload = generate_referral(kind, random.Random(2), "high", edge="victim_not_aware")
        assert payload["consent"]["victim_aware"] == "no"
        assert payload["consent"]["reason_not_sought"] == "seeking_would_increase_risk"

    @pytest.mark.parametrize(
        ("kind", "path"),
        [("marac_referral", ("victim", "refuge_address")),
         ("support_referral", ("refuge_location",))],
    )
    def test_refuge_address_present(self, kind: str, path: tuple[str, ...]) -> None:
        """The refuge edge case carries the field every ISA must strip."""
        payload: Any = generate_referral(kind, random.Random(2), "high", edge="refuge_address")
        for key in path:
            payload = payload[key]
        assert payload.startswith("SYNTHETIC REFUGE")

    @pytest.mark.parametrize("seed", range(10))
    def test_young_victim_is_16_or_17(self, seed: int) -> None:
        """The victim is 16 or 17 on the referral date."""
        payload = generate_referral("marac_referral", random.Random(seed), edge="young_victim")
        born = date.fromisoformat(payload["victim"]["date_of_birth"])
        on = date.fromisoformat(payload["referral_date"])
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        assert age in (16, 17)

    def test_pregnant_victim_answers_q9_yes(self) -> None:
        """Pregnancy shows in the victim record and in DASH q9."""
        payload = generate_referral("marac_referral", random.Random(4), "standard",
                                    edge="pregnant_victim")
        assert payload["victim"]["pregnant"] is True
        assert payload["dash"]["q9"] == {"answer": "yes"}

    def test_dash_answers_include_required_yes(self) -> None:
        """must_be_yes questions are yes and the score stays in band."""
        answers = dash_answers(random.Random(0), "medium", must_be_yes=("q9", "q15"))
        yes = [q for q, a in answers.items() if a["answer"] == "yes"]
        assert {"q9", "q15"} <= set(yes)
        assert 10 <= len(yes) <= 13

    def test_unknown_edge_case_is_refused(self) -> None:
        """A misspelt edge case is an error, not silently ignored."""
        with pytest.raises(ValueError, match="unknown edge case"):
            generate_referral("marac_referral", random.Random(0), edge="pregnant")


def _pairs(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON value."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in [(k, v), *_pairs(v)]]
    if isinstance(value, list):
        return [p for v in value for p in _pairs(v)]
    return []


class TestJson:
    def test_records_are_json(self) -> None:
        """A generated record survives a JSON round trip unchanged."""
        payload = generate_referral("police_concern", random.Random(1))
        assert json.loads(json.dumps(payload)) == payload
