"""DASH: score is the count of yes, banding is local, judgement raises and never lowers."""

from __future__ import annotations

from typing import Any

import pytest

from federation.errors import PayloadInvalid
from federation.referrals import DASH_QUESTIONS, band, parse_payload
from federation.referrals.dash import DashAssessment


def answers(yes: int, other: str = "no") -> dict[str, Any]:
    """A full checklist with the first ``yes`` questions answered yes."""
    return {q: {"answer": "yes" if i < yes else other} for i, q in enumerate(DASH_QUESTIONS)}


def dash_payload(dash: dict[str, Any]) -> dict[str, Any]:
    return {"synthetic": True, "dash": dash}


def parse_dash(dash: dict[str, Any], *, minimised: bool = True) -> DashAssessment:
    referral = parse_payload("dash_risk_assessment", dash_payload(dash), minimised=minimised)
    assert referral.dash is not None  # type: ignore[attr-defined]
    result: DashAssessment = referral.dash  # type: ignore[attr-defined]
    return result


class TestBanding:
    @pytest.mark.parametrize(
        ("score", "level"),
        [(0, "standard"), (9, "standard"), (10, "medium"), (13, "medium"), (14, "high"),
         (24, "high")],
    )
    def test_band_edges(self, score: int, level: str) -> None:
        """14+ is high, 10-13 medium, anything less standard."""
        assert band(score) == level

    def test_score_is_the_count_of_yes(self) -> None:
        """Don't-know answers do not count."""
        assert parse_dash(answers(11, other="dont_know")).computed_score == 11

    def test_risk_level_comes_from_the_answers(self) -> None:
        """A checklist with 14 yes answers is high risk."""
        assert parse_dash(answers(14)).risk_level == "high"

    def test_referral_risk_level_is_the_dash_level(self) -> None:
        """The message's ``risk_level`` is its DASH's level."""
        referral = parse_payload("dash_risk_assessment", dash_payload(answers(12)), minimised=True)
        assert referral.risk_level == "medium"

    def test_withheld_dash_gives_standard(self) -> None:
        """With no DASH at all the level is the lowest."""
        referral = parse_payload("dash_risk_assessment", {"synthetic": True}, minimised=True)
        assert referral.risk_level == "standard"


class TestStatedScoreAndLevel:
    def test_a_matching_stated_score_is_accepted(self) -> None:
        """Score 15 with 15 yes answers parses."""
        assert parse_dash({**answers(15), "score": 15, "level": "high"}).score == 15

    def test_a_wrong_score_is_rejected_at_its_path(self) -> None:
        """Score 12 with 15 yes answers names dash.score."""
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash({**answers(15), "score": 12})
        assert set(caught.value.errors) == {"dash.score"}

    def test_a_wrong_level_is_rejected_at_its_path(self) -> None:
        """Level medium with 15 yes answers names dash.level."""
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash({**answers(15), "level": "medium"})
        assert set(caught.value.errors) == {"dash.level"}

    def test_score_alone_survives_minimisation(self) -> None:
        """A minimised DASH with only score and level keeps its level."""
        assert parse_dash({"score": 16, "level": "high"}).risk_level == "high"

    def test_partial_answers_bound_the_score(self) -> None:
        """Three yes answers present cannot go with a stated score of 2."""
        partial = {q: {"answer": "yes"} for q in DASH_QUESTIONS[:3]}
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash({**partial, "score": 2})
        assert "dash.score" in caught.value.errors

    def test_partial_answers_allow_withheld_yes(self) -> None:
        """Three yes answers present fit a score of 14 when 21 answers are withheld."""
        partial = {q: {"answer": "yes"} for q in DASH_QUESTIONS[:3]}
        assert parse_dash({**partial, "score": 14}).risk_level == "high"


class TestProfessionalJudgement:
    def test_judgement_raises_the_level(self) -> None:
        """A medium score judged high is high."""
        dash = {**answers(11), "professional_judgement": {"level": "high", "justification": "x"}}
        assert parse_dash(dash).risk_level == "high"

    def test_raised_level_may_be_stated(self) -> None:
        """A stated level equal to the judged level agrees."""
        dash = {**answers(11), "level": "high", "professional_judgement": {"level": "high"}}
        assert parse_dash(dash).level == "high"

    def test_judgement_never_lowers_the_level(self) -> None:
        """A high score judged standard is rejected, naming the judgement's level."""
        dash = {**answers(16), "professional_judgement": {"level": "standard"}}
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash(dash)
        assert set(caught.value.errors) == {"dash.professional_judgement.level"}
        assert "never lower" in caught.value.errors["dash.professional_judgement.level"]

    def test_stated_level_below_the_judgement_is_rejected(self) -> None:
        """With the answers withheld, a stated level must still include the judgement."""
        dash = {"level": "medium", "professional_judgement": {"level": "high"}}
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash(dash)
        assert set(caught.value.errors) == {"dash.level"}

    def test_judgement_below_a_stated_level_is_rejected(self) -> None:
        """With the answers withheld, a judgement below the stated level is a lowering."""
        dash = {"level": "high", "professional_judgement": {"level": "medium"}}
        with pytest.raises(PayloadInvalid) as caught:
            parse_dash(dash)
        assert set(caught.value.errors) == {"dash.professional_judgement.level"}

    def test_equal_judgement_is_accepted(self) -> None:
        """Judging the banded level again changes nothing."""
        dash = {**answers(10), "professional_judgement": {"level": "medium"}}
        assert parse_dash(dash).risk_level == "medium"
