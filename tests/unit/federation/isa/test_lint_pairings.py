"""Lint of the legal pairings (E11-E16, W5): one defect file each, the message and its line."""

from __future__ import annotations

import pytest

from federation.errors import PolicyError
from federation.isa import load_isa
from tests.unit.federation.isa.support import fake_catalogue
from tests.unit.federation.isa.support_v2 import COMPLETE, V2, lint_text


def _lint(name: str) -> list[str]:
    return lint_text((V2 / f"{name}.yaml").read_text(), f"{name}.yaml")


class TestCompleteIsa:
    def test_complete_fixture_has_no_problem_at_all(self) -> None:
        """The base of every defect file records every element and lints with nothing."""
        assert lint_text(COMPLETE) == []


class TestArticle9NeedsSchedule1:
    def test_health_or_social_care_needs_para_2(self) -> None:
        """Art 9(2)(h) is met only with Schedule 1 para 2 (DPA 2018 s10(2))."""
        assert _lint("art9_h_without_para2") == [
            "art9_h_without_para2.yaml:45: Art 9 condition 'a9_2_h' needs "
            "sch1_p1_2_health_social_care in sch1 (DPA 2018 s10)"
        ]

    def test_substantial_public_interest_needs_a_part_2_condition(self) -> None:
        """Art 9(2)(g) is met only with a Schedule 1 Part 2 condition (s10(3))."""
        assert _lint("art9_g_without_part2") == [
            "art9_g_without_part2.yaml:45: Art 9 condition 'a9_2_g' needs a Schedule 1 Part 2 "
            "condition in sch1 (DPA 2018 s10)"
        ]

    def test_employment_and_social_protection_needs_para_1(self) -> None:
        """Art 9(2)(b) is met only with Schedule 1 para 1 (s10(2))."""
        assert _lint("art9_b_without_para1") == [
            "art9_b_without_para1.yaml:45: Art 9 condition 'a9_2_b' needs "
            "sch1_p1_1_employment in sch1 (DPA 2018 s10)"
        ]

    def test_para_36_needs_a_part_2_condition_to_extend(self) -> None:
        """Schedule 1 para 36 extends a Part 2 condition to criminal offence data; none, error."""
        assert _lint("para36_without_part2") == [
            "para36_without_part2.yaml:47: 'sch1_p3_36_ext_p2' extends Schedule 1 Part 2 "
            "conditions, but this basis cites none"
        ]

    def test_a_schedule_8_code_is_not_a_schedule_1_condition(self) -> None:
        """A known code under the wrong key is an error at the code's line."""
        assert _lint("code_under_wrong_key") == [
            "code_under_wrong_key.yaml:46: 'sch8_p4_safeguarding' is a Schedule 8 condition "
            "(sch8), not allowed under 'sch1'"
        ]

    def test_a_schedule_1_condition_without_its_article_9_point_is_a_warning(self) -> None:
        """Para 2 listed without Art 9(2)(h) is probably a slip: a warning, not an error."""
        assert _lint("orphan_schedule_1_condition") == [
            "orphan_schedule_1_condition.yaml:46: warning: 'sch1_p1_2_health_social_care' is a "
            "condition for an Art 9(2) point this basis does not cite"
        ]


class TestPart3:
    def test_part_3_only_for_a_competent_authority(self) -> None:
        """DPA 2018 Part 3 applies to competent authorities (s30) only."""
        assert _lint("part3_not_competent_authority") == [
            "part3_not_competent_authority.yaml:39: 'agency-a' is not a competent authority "
            "(competent_authority_part3), so it cannot process under DPA 2018 Part 3"
        ]

    def test_a_law_enforcement_purpose_is_part_3(self) -> None:
        """A s31 law-enforcement purpose under UK GDPR is an error at part3_purpose."""
        assert _lint("part3_purpose_under_uk_gdpr") == [
            "part3_purpose_under_uk_gdpr.yaml:45: a law-enforcement purpose (part3_purpose) is "
            "processing under DPA 2018 Part 3: use regime dpa2018_part3 with sch8 conditions"
        ]


class TestLegitimateInterests:
    def test_public_authority_cannot_rely_on_legitimate_interests(self) -> None:
        """Art 6(1)(f) is barred to a public authority performing its tasks (and lacks an LIA)."""
        assert _lint("public_authority_legitimate_interests") == [
            "public_authority_legitimate_interests.yaml:44: 'agency-b' is a public authority and "
            "cannot rely on 'a6_1_f_legitimate_interests'",
            "public_authority_legitimate_interests.yaml:44: warning: 'agency-b' relies on Art "
            "6(1)(f) without a legitimate interests assessment "
            "(linked_documents.legitimate_interests_assessments)",
        ]

    def test_annex_1_condition_only_with_recognised_legitimate_interest(self) -> None:
        """An rli_condition on a public-task basis is an error."""
        assert _lint("rli_condition_without_ea") == [
            "rli_condition_without_ea.yaml:45: rli_condition (an Annex 1 condition) applies "
            "only to Art 6(1)(ea)"
        ]

    def test_a_charity_may_rely_on_a_recognised_legitimate_interest(self) -> None:
        """A party that is not a public authority may use Art 6(1)(ea) with its condition."""
        text = COMPLETE.replace(
            "    sector: la_social_work\n",
            "    sector: third_sector\n    public_authority: false\n",
        ).replace(
            "        article6: a6_1_e_public_task\n",
            "        article6: a6_1_ea_recognised_legitimate_interest\n"
            "        rli_condition: annex1_p6_safeguarding\n",
        )
        assert lint_text(text) == []

    def test_recognised_legitimate_interest_without_its_condition_is_a_warning(self) -> None:
        """Art 6(1)(ea) is met only with an Annex 1 condition: missing, lint says which key."""
        text = COMPLETE.replace(
            "    sector: la_social_work\n",
            "    sector: third_sector\n    public_authority: false\n",
        ).replace(
            "        article6: a6_1_e_public_task\n",
            "        article6: a6_1_ea_recognised_legitimate_interest\n",
        )
        assert lint_text(text) == [
            "complete.yaml:46: warning: 'agency-b' relies on Art 6(1)(ea) but does not name its "
            "Annex 1 condition (rli_condition)"
        ]


class TestReferences:
    def test_signatory_for_a_non_party_is_an_unknown_agency(self) -> None:
        """Sign-off names parties only."""
        assert _lint("sign_off_unknown_party") == [
            "sign_off_unknown_party.yaml:87: unknown agency 'agency-x': not a party to this ISA"
        ]


class TestPairingErrorsStopTheLoad:
    @pytest.mark.parametrize(
        "name",
        ["art9_h_without_para2", "part3_not_competent_authority", "rli_condition_without_ea"],
    )
    def test_load_isa_refuses_a_pairing_error(self, name: str) -> None:
        """An ISA with a pairing error never governs a message: load_isa refuses it."""
        with pytest.raises(PolicyError):
            load_isa(name, (V2 / f"{name}.yaml").read_bytes(), catalogue=fake_catalogue)
