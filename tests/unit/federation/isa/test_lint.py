"""Lint: one test per defect, each file in tests/fixtures/isa_defects holding just that defect."""

from __future__ import annotations

from datetime import date

import pytest

from federation.errors import PolicyError
from federation.isa import completeness, duplicate_isa_ids, lint, load_isa, parse_isa
from tests.unit.federation.isa.support import FIXTURES, fake_catalogue

TODAY = date(2026, 6, 1)


def _lint(name: str, known: tuple[str, ...] | None = None) -> list[str]:
    """Every problem lint finds in the fixture, as ``file:line: message`` (except the ICO-code
    completeness warnings, tested in tests/unit/federation/isa/test_completeness.py)."""
    data = (FIXTURES / f"{name}.yaml").read_bytes()
    try:
        isa = parse_isa(f"{name}.yaml", data, catalogue=fake_catalogue)
    except PolicyError as exc:
        return [str(p) for p in exc.problems]
    missing = set(completeness(isa))
    return [str(p) for p in lint(isa, today=TODAY, known_agencies=known) if p not in missing]


class TestCleanIsa:
    def test_clean_fixture_has_no_problems(self) -> None:
        """The base every defect file is copied from is itself clean."""
        assert _lint("clean") == []


class TestLintErrors:
    def test_unknown_field_path(self) -> None:
        """A pattern that matches nothing in the catalogue is named with its line."""
        assert _lint("unknown_field_path") == [
            "unknown_field_path.yaml:38: unknown field path 'victim.shoe_size'"]

    def test_field_released_at_lower_level_but_not_higher(self) -> None:
        """Released sets must grow with risk: each missing field is reported at the higher level."""
        assert _lint("not_monotone") == [
            f"not_monotone.yaml:50: flow 'a-to-b': field {f!r} is released at medium risk "
            "but not at high risk"
            for f in ("dash.q1", "incident_date", "victim.address")
        ]

    def test_special_category_without_schedule_1(self) -> None:
        """Art 9 without a Schedule 1 condition does not cover special-category fields."""
        assert _lint("special_category_without_condition") == [
            "special_category_without_condition.yaml:27: flow 'a-to-b' releases special category "
            "field 'dash.q1' but 'agency-b' has no Art 9 + Schedule 1 (or Schedule 8) condition",
            "special_category_without_condition.yaml:30: Art 9 condition 'a9_2_g' needs a "
            "Schedule 1 Part 2 condition in sch1 (DPA 2018 s10)",
            "special_category_without_condition.yaml:31: 'sch1_p3_36_ext_p2' extends Schedule 1 "
            "Part 2 conditions, but this basis cites none"]

    def test_criminal_offence_without_condition(self) -> None:
        """A UK GDPR party needs an Art 10 / Schedule 1 condition for criminal-offence fields."""
        assert _lint("criminal_offence_without_condition") == [
            "criminal_offence_without_condition.yaml:27: flow 'a-to-b' releases criminal offence "
            "field 'dash.q1' but 'agency-b' has no criminal offence condition"]

    def test_never_share_field_in_allow_list(self) -> None:
        """Naming a never_share field in an allow list is an error (it would be withheld anyway)."""
        assert _lint("never_share_in_allow_list") == [
            "never_share_in_allow_list.yaml:50: never_share field 'victim.refuge_address' "
            "is in the allow list at high risk"]

    def test_unknown_agency_in_a_flow(self) -> None:
        """A flow's recipient must be a party to the ISA."""
        assert _lint("unknown_agency") == [
            "unknown_agency.yaml:44: unknown agency 'agency-c': not a party to this ISA"]

    def test_party_not_known_to_the_federation(self) -> None:
        """With a list of the federation's agencies, a party outside it is an error."""
        assert _lint("clean", known=("agency-a",)) == ["clean.yaml:18: unknown agency 'agency-b'"]

    def test_lawful_basis_for_a_non_party(self) -> None:
        """A lawful basis for an agency that is not a party is an unknown agency."""
        assert _lint("lawful_basis_for_non_party") == [
            "lawful_basis_for_non_party.yaml:27: unknown agency 'agency-x': "
            "not a party to this ISA"]

    def test_party_without_lawful_basis_for_the_purpose(self) -> None:
        """Every party in a flow needs a lawful basis for the flow's purpose."""
        assert _lint("missing_lawful_basis") == [
            "missing_lawful_basis.yaml:39: party 'agency-b' has no lawful basis for purpose "
            "'safeguarding'"]

    def test_duplicate_flow_id(self) -> None:
        """Flow ids are unique within an ISA."""
        assert _lint("duplicate_flow_id") == [
            "duplicate_flow_id.yaml:61: duplicate flow id 'a-to-b'"]

    def test_duplicate_field_set_id(self) -> None:
        """Field sets are a mapping; a repeated name is caught although YAML would allow it."""
        assert _lint("duplicate_field_set_id") == [
            "duplicate_field_set_id.yaml:40: duplicate key 'field_sets.core'"]

    def test_duplicate_party_id(self) -> None:
        """Party ids are unique within an ISA."""
        assert _lint("duplicate_party_id") == [
            "duplicate_party_id.yaml:20: duplicate party id 'agency-b'"]

    def test_duplicate_isa_id_across_files(self) -> None:
        """Two files with one ISA id: the second is reported at its id line."""
        isas = [
            parse_isa(f"{n}.yaml", (FIXTURES / f"{n}.yaml").read_bytes(), catalogue=fake_catalogue)
            for n in ("clean", "duplicate_isa_id")
        ]
        assert [str(p) for p in duplicate_isa_ids(isas)] == [
            "duplicate_isa_id.yaml:3: duplicate ISA id 'isa-test-clean' (also in clean.yaml)"]

    def test_transform_on_a_field_it_does_not_apply_to(self) -> None:
        """An age band only applies to a date of birth."""
        assert _lint("transform_not_applicable") == [
            "transform_not_applicable.yaml:54: transform 'age_band' does not apply to field "
            "'victim.name'"]

    def test_unknown_field_set(self) -> None:
        """A risk level may only name field sets the ISA defines."""
        assert _lint("unknown_field_set") == [
            "unknown_field_set.yaml:48: unknown field set 'extras'"]

    def test_unknown_purpose(self) -> None:
        """A flow's purpose must be one of the ISA's purposes."""
        assert _lint("unknown_purpose") == ["unknown_purpose.yaml:45: unknown purpose 'marketing'"]

    def test_unknown_message_type(self) -> None:
        """A message type the catalogue does not know is an error."""
        assert _lint("unknown_message_type") == [
            "unknown_message_type.yaml:46: unknown message type 'gossip'"]


    def test_public_authority_relying_on_legitimate_interest(self) -> None:
        """Art 6(1)(ea)/(f) are not available to a public authority performing its tasks."""
        assert _lint("public_authority_legitimate_interest") == [
            "public_authority_legitimate_interest.yaml:29: 'agency-b' is a public authority and "
            "cannot rely on 'a6_1_ea_recognised_legitimate_interest'"]


class TestLintWarnings:
    def test_expired_isa_is_a_warning(self) -> None:
        """An ISA past effective_to is a warning, not an error."""
        assert _lint("expired") == [
            "expired.yaml:8: warning: ISA 'isa-test-clean' expired on 2026-03-31"]

    def test_overdue_review_is_a_warning(self) -> None:
        """An ISA past its review date is a warning."""
        assert _lint("overdue_review") == [
            "overdue_review.yaml:10: warning: ISA 'isa-test-clean' is overdue for review "
            "(due 2026-03-01)"]


    def test_unknown_legal_code_is_a_warning(self) -> None:
        """A code the glossary does not know (a typo such as a9_2_q) is flagged."""
        assert _lint("unknown_legal_code") == [
            "unknown_legal_code.yaml:30: warning: unknown legal code 'a9_2_q'"]


class TestLoadRefusesErrors:
    def test_load_isa_raises_on_any_lint_error(self) -> None:
        """load_isa (unlike parse_isa) refuses an ISA with a lint error."""
        data = (FIXTURES / "unknown_agency.yaml").read_bytes()
        with pytest.raises(PolicyError) as info:
            load_isa("unknown_agency.yaml", data, catalogue=fake_catalogue)
        assert [p.line for p in info.value.problems] == [44]

    def test_load_isa_accepts_warnings(self) -> None:
        """Warnings do not stop an ISA loading (evaluation denies an expired one anyway)."""
        data = (FIXTURES / "expired.yaml").read_bytes()
        assert load_isa("expired.yaml", data, catalogue=fake_catalogue).id == "isa-test-clean"
