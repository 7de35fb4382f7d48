"""The SafeLives DASH risk identification checklist (24 questions) and its risk banding.

This module performs no I/O.

Rules:
1. Score = the number of questions answered ``yes``.
2. Level by local banding: score >= 14 high, 10-13 medium, otherwise standard
   (``LOCAL_BANDING``; local convention, not a SafeLives rule).
3. Professional judgement may RAISE the level, never lower it. A judgement below the banded
   level is REJECTED (``dash_judgement_lowers``) rather than silently ignored, so the
   practitioner learns at once that their form says two different things.
4. A stated ``score`` or ``level`` must agree with the answers present. In a minimised payload
   some answers may be withheld: the stated score must then lie between the ``yes`` answers
   present and that number plus the answers missing.
5. Labels are short paraphrases; the official wording is (c) SafeLives / Laura Richards.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from federation.referrals.common import EventDate, RiskLevel, StrictModel, higher_level

__all__ = [
    "DASH_LABELS",
    "DASH_QUESTIONS",
    "LOCAL_BANDING",
    "DashAnswer",
    "DashAssessment",
    "ProfessionalJudgement",
    "band",
]

DASH_QUESTIONS: tuple[str, ...] = tuple(f"q{n}" for n in range(1, 25))
LOCAL_BANDING: tuple[tuple[int, RiskLevel], ...] = ((14, "high"), (10, "medium"), (0, "standard"))

DASH_LABELS: dict[str, str] = {
    "q1": "current incident caused injury",
    "q2": "victim very frightened",
    "q3": "what the victim is afraid of",
    "q4": "isolated from family, friends or GP by the abuser",
    "q5": "depressed or having suicidal thoughts",
    "q6": "separated or tried to separate in the past year",
    "q7": "conflict over child contact",
    "q8": "constant texting, calling, following or stalking",
    "q9": "pregnant or had a baby in the last 18 months",
    "q10": "abuse happening more often",
    "q11": "abuse getting worse",
    "q12": "abuser tries to control everything or is excessively jealous",
    "q13": "abuser used weapons or objects to hurt",
    "q14": "abuser threatened to kill the victim or someone else",
    "q15": "abuser attempted to strangle, choke, suffocate or drown",
    "q16": "sexual abuse or degrading sexual behaviour",
    "q17": "another person has threatened the victim",
    "q18": "abuser known to have hurt anyone else",
    "q19": "abuser mistreated an animal or pet",
    "q20": "financial issues or dependency on the abuser",
    "q21": "abuser's drug, alcohol or mental health problems in the past year",
    "q22": "abuser threatened or attempted suicide",
    "q23": "abuser broke bail, an injunction or a contact agreement",
    "q24": "abuser in trouble with the police or has a criminal history",
}


def band(score: int) -> RiskLevel:
    """The local risk band for a DASH score."""
    for threshold, level in LOCAL_BANDING:
        if score >= threshold:
            return level
    return "standard"


class DashAnswer(StrictModel):
    """One question's answer, who gave it if not the victim, and a comment."""

    answer: Literal["yes", "no", "dont_know"] | None = None
    source: str | None = None
    comment: str | None = None


class ProfessionalJudgement(StrictModel):
    """The assessor's judgement: may raise the banded level, with a justification."""

    level: RiskLevel | None = None
    justification: str | None = None


class DashAssessment(StrictModel):
    """A completed DASH checklist; ``risk_level`` combines banding and judgement."""

    scheme: Literal["safelives_dash_24"] | None = None
    q1: DashAnswer | None = None
    q2: DashAnswer | None = None
    q3: DashAnswer | None = None
    q4: DashAnswer | None = None
    q5: DashAnswer | None = None
    q6: DashAnswer | None = None
    q7: DashAnswer | None = None
    q8: DashAnswer | None = None
    q9: DashAnswer | None = None
    q10: DashAnswer | None = None
    q11: DashAnswer | None = None
    q12: DashAnswer | None = None
    q13: DashAnswer | None = None
    q14: DashAnswer | None = None
    q15: DashAnswer | None = None
    q16: DashAnswer | None = None
    q17: DashAnswer | None = None
    q18: DashAnswer | None = None
    q19: DashAnswer | None = None
    q20: DashAnswer | None = None
    q21: DashAnswer | None = None
    q22: DashAnswer | None = None
    q23: DashAnswer | None = None
    q24: DashAnswer | None = None
    score: int | None = Field(default=None, ge=0, le=24)
    level: RiskLevel | None = None
    professional_judgement: ProfessionalJudgement | None = None
    assessed_at: EventDate | None = None
    assessor_org: str | None = None
    assessor_role: str | None = None

    def answers(self) -> dict[str, str]:
        """The answers present, by question id (withheld or blank questions are absent)."""
        found: dict[str, str] = {}
        for q in DASH_QUESTIONS:
            item: DashAnswer | None = getattr(self, q)
            if item is not None and item.answer is not None:
                found[q] = item.answer
        return found

    @property
    def computed_score(self) -> int | None:
        """Count of ``yes`` when every answer is present, else the stated score (may be None)."""
        answers = self.answers()
        if len(answers) == len(DASH_QUESTIONS):
            return sum(1 for a in answers.values() if a == "yes")
        return self.score

    @property
    def banded_level(self) -> RiskLevel | None:
        """The level the score alone gives, or None when the score is unknown."""
        score = self.computed_score
        return None if score is None else band(score)

    @property
    def risk_level(self) -> RiskLevel:
        """Banded level raised by professional judgement (stated level if no score is known)."""
        judged = self.professional_judgement.level if self.professional_judgement else None
        base = self.banded_level or self.level or "standard"
        return higher_level(base, judged) if judged else base

    @model_validator(mode="after")
    def _consistent(self) -> DashAssessment:
        self._check_score()
        basis = self.banded_level or self.level
        judged = self.professional_judgement.level if self.professional_judgement else None
        if basis is not None and judged is not None and higher_level(basis, judged) != judged:
            raise _error(
                "professional_judgement.level",
                f"professional judgement may raise the risk level but never lower it "
                f"(the DASH gives {basis}, the judgement says {judged})",
            )
        if self.level is not None and self.level != self.risk_level:
            raise _error(
                "level", f"stated level {self.level} does not agree with {self.risk_level}"
            )
        return self

    def _check_score(self) -> None:
        if self.score is None:
            return
        answers = self.answers()
        yes = sum(1 for a in answers.values() if a == "yes")
        missing = len(DASH_QUESTIONS) - len(answers)
        if not yes <= self.score <= yes + missing:
            expected = str(yes) if missing == 0 else f"{yes}-{yes + missing}"
            raise _error(
                "score", f"stated score {self.score} does not agree with the answers ({expected})"
            )


def _error(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("dash_inconsistent", "{detail}", {"field": field, "detail": message})
