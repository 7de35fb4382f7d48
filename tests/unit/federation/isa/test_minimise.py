"""minimise(): keep, drop and generalise exactly what the decision says; never add anything."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.isa import (
    Decision,
    ReferralFacts,
    age_band,
    evaluate,
    is_transformed,
    postcode_district,
    year_of,
)
from federation.minimise import minimise
from tests.unit.federation.isa.support import FAKE_PATHS, NOW, load_fake
from tests.unit.federation.isa.test_evaluate import PAYLOAD

ISA = load_fake()


def _decision(payload: dict[str, Any], level: str = "high") -> Decision:
    facts = ReferralFacts(level, payload, agreement="given")  # type: ignore[arg-type]
    return evaluate(ISA, sender="agency-a", recipient="agency-b", purpose="safeguarding",
                    message_type="fake_referral", referral=facts, now=NOW)


def _leaves(obj: Any, prefix: str = "") -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_leaves(v, f"{prefix}{k}.") for k, v in obj.items())) if obj else set()
    if isinstance(obj, list) and obj and isinstance(obj[0], dict):
        return set().union(*(_leaves(v, prefix[:-1] + "[].") for v in obj))
    return {prefix[:-1]}


class TestTransforms:
    def test_age_bands_follow_the_published_boundaries(self) -> None:
        """Each band boundary falls on the right side, as of the given day."""
        today = date(2026, 6, 1)
        cases = {"2010-06-02": "0-15", "2010-06-01": "16-17", "2008-06-01": "18-24",
                 "2001-06-02": "18-24", "2001-06-01": "25-34", "1961-06-01": "65+"}
        assert {dob: age_band(dob, today) for dob in cases} == cases

    def test_age_band_passes_a_band_through(self) -> None:
        """A value already banded is left alone (idempotence)."""
        assert age_band("25-34", date(2026, 6, 1)) == "25-34"

    def test_postcode_district_from_an_address(self) -> None:
        """The outward code of the last postcode in an address."""
        assert postcode_district("12 Synthetic Row, QX1 4ZZ") == "QX1"
        assert postcode_district("QX10 4ZZ") == "QX10"
        assert postcode_district("QX1") == "QX1"

    def test_unreadable_values_are_not_passed_on(self) -> None:
        """A value a transform cannot read becomes None (the minimiser then drops it)."""
        assert postcode_district("no postcode here") is None
        assert age_band("not a date", date(2026, 6, 1)) is None
        assert year_of("soon") is None

    def test_year_of_a_date(self) -> None:
        """A date, date string or year gives the year."""
        years = (year_of("2026-02-03"), year_of(date(2025, 1, 1)), year_of(2024))
        assert years == (2026, 2025, 2024)

    def test_is_transformed_recognises_the_generalised_forms(self) -> None:
        """The recipient's check accepts bands, districts and years, not the full values."""
        assert is_transformed("age_band", "35-44")
        assert not is_transformed("age_band", "1990-05-02")
        assert is_transformed("postcode_district", "QX1")
        assert not is_transformed("postcode_district", "QX1 4ZZ")
        assert is_transformed("year", 2026)
        assert not is_transformed("year", "2026-02-03")


class TestMinimise:
    def test_high_risk_output_is_exactly_the_released_generalised_fields(self) -> None:
        """Everything shared, generalised; nothing withheld."""
        out = minimise(PAYLOAD, _decision(PAYLOAD, "high"))
        assert out == {
            "synthetic": True,
            "victim": {"name": "SYN Victim", "date_of_birth": "35-44", "address": "QX1",
                       "mental_health": "SYN note"},
            "perpetrator": {"name": "SYN Perpetrator", "criminal_history": "SYN history"},
            "children": [{"name": "SYN Child", "date_of_birth": "2016-03-04"}],
            "dash": {"q1": "yes", "score": 15},
            "incident_date": "2026-02-03",
        }

    def test_standard_risk_output_is_the_core_set(self) -> None:
        """Only the four core fields survive at standard risk."""
        out = minimise(PAYLOAD, _decision(PAYLOAD, "standard"))
        victim = {"name": "SYN Victim", "date_of_birth": "35-44"}
        assert out == {"synthetic": True, "victim": victim, "dash": {"score": 15}}

    def test_deny_yields_nothing(self) -> None:
        """A DENY decision releases an empty payload."""
        decision = evaluate(ISA, sender="agency-b", recipient="agency-a", purpose="safeguarding",
                            message_type="fake_referral",
                            referral=ReferralFacts("high", PAYLOAD, agreement="given"), now=NOW)
        assert decision.outcome == "DENY"
        assert minimise(PAYLOAD, decision) == {}

    def test_fields_the_decision_never_saw_are_dropped(self) -> None:
        """Deny by default: a path added after the decision does not get through."""
        decision = _decision(PAYLOAD, "high")
        extra = PAYLOAD | {"victim": PAYLOAD["victim"] | {"secret": "x"}}
        assert "secret" not in minimise(extra, decision)["victim"]


_VALUES = st.one_of(st.text(max_size=8), st.integers(), st.booleans(),
                    st.dates().map(date.isoformat),
                    st.sampled_from(["12 Synthetic Row, QX1 4ZZ", "QX2 1AB", "25-34"]))


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Random subsets of the fake catalogue's paths, with random values."""
    paths = draw(st.lists(st.sampled_from(sorted(FAKE_PATHS)), unique=True))
    out: dict[str, Any] = {}
    for path in paths:
        head, _, rest = path.partition(".")
        value = draw(_VALUES)
        if head.endswith("[]"):
            items = out.setdefault(head[:-2], [{}])
            items[0][rest] = value
        elif rest:
            out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


class TestMinimiseProperties:
    @settings(max_examples=150, deadline=None)
    @given(payloads(), st.sampled_from(["standard", "medium", "high"]))
    def test_never_adds_a_field_or_a_value_and_is_idempotent(
        self, payload: dict[str, Any], level: str
    ) -> None:
        """Output paths are input paths; kept values are the input's; twice == once."""
        decision = _decision(payload, level)
        out = minimise(payload, decision)
        assert _leaves(out) <= _leaves(payload)
        for path in _leaves(out) - set(decision.transforms):
            head, _, rest = path.partition(".")
            source = payload[head.removesuffix("[]")]
            target = out[head.removesuffix("[]")]
            if head.endswith("[]"):
                source, target = source[0], target[0]
            assert (target[rest] if rest else target) == (source[rest] if rest else source)
        assert minimise(out, decision) == out
