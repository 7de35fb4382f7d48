"""``police_concern``: a police concern / vulnerable-person report (iVPD-style, PPN-style).

This module performs no I/O.

Rules:
1. Fields are reconstructed from public descriptions (domain notes section 3.4); the iVPD field
   list itself is not public.
2. People appear in role-specific lists (``victim``, ``perpetrators``, ``children``,
   ``other_subjects``) so that every field has a fixed data-subject role in the catalogue.
3. ``risk_level`` is ``risk_assessment.level``; ``standard`` when withheld.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from federation.referrals.common import (
    Address,
    DateOfBirth,
    EventTime,
    Postcode,
    Practitioner,
    Referral,
    RiskLevel,
    SafeContact,
    StrictModel,
)

__all__ = [
    "AdultAtRiskTest",
    "OtherSubject",
    "PoliceAccused",
    "PoliceChild",
    "PoliceConcern",
    "PolicePerson",
    "PoliceRiskAssessment",
    "ShareDecision",
    "SupervisorReview",
    "ViewsSought",
]

Shanarri = Literal[
    "safe", "healthy", "achieving", "nurtured", "active", "respected", "responsible", "included"
]
Partner = Literal[
    "social_work", "health", "education", "housing", "children_reporter", "assist", "idva",
    "womens_aid",
]


class PolicePerson(StrictModel):
    """A person named in the report (victim, accused or other subject)."""

    name: str | None = None
    aliases: tuple[str, ...] | None = None
    date_of_birth: DateOfBirth | None = None
    gender: Literal["female", "male", "other", "not_stated"] | None = None
    address: Address | None = None
    postcode: Postcode | None = None
    phone: str | None = None


class PoliceAccused(PolicePerson):
    """The accused or suspected perpetrator, with their history and bail conditions."""

    criminal_history: str | None = None
    bail_conditions: str | None = None


class OtherSubject(PolicePerson):
    """A witness, household member or other person named in the report."""

    role: Literal["witness", "household_member", "reporter", "other"] | None = None


class PoliceChild(StrictModel):
    """A child connected to the incident."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    present: bool | None = None
    witnessed: bool | None = None
    injured: bool | None = None
    school: str | None = None


class SupervisorReview(StrictModel):
    """The supervisor's review before a concern is shared."""

    by: str | None = None
    at: EventTime | None = None
    outcome: Literal["approved", "returned", "no_further_action"] | None = None


class AdultAtRiskTest(StrictModel):
    """The Scottish three-point test (or Care Act s42 criteria)."""

    unable_to_safeguard_self: bool | None = None
    at_risk_of_harm: bool | None = None
    more_vulnerable_due_to_condition: bool | None = None
    notes: str | None = None


class ViewsSought(StrictModel):
    """Whether the person's views on sharing were sought, and if not, why."""

    sought: bool | None = None
    views: str | None = None
    exemption_reason: (
        Literal[
            "risk_to_person", "risk_to_others", "prejudice_investigation", "capacity",
            "not_practicable",
        ]
        | None
    ) = None


class PoliceRiskAssessment(StrictModel):
    """The force's risk assessment tool, score and resulting level."""

    scheme: Literal["safelives_dash_24", "acpo_dash_27", "ps_daq_27", "dara"] | None = None
    score: int | None = Field(default=None, ge=0, le=27)
    level: RiskLevel | None = None


class ShareDecision(StrictModel):
    """Who decided to share, on what basis, when."""

    lawful_basis: str | None = None
    condition: str | None = None
    decided_by: str | None = None
    decided_at: EventTime | None = None


class PoliceConcern(Referral):
    """A police concern report shared with statutory and support partners."""

    message_type: ClassVar[str] = "police_concern"
    report_id: str | None = None
    report_type: (
        Literal[
            "child_concern", "adult_concern", "domestic_abuse", "hate", "youth_offending",
            "missing_person", "mental_health",
        ]
        | None
    ) = None
    incident_ref: str | None = None
    crime_ref: str | None = None
    occurred_at: EventTime | None = None
    reported_at: EventTime | None = None
    location: Address | None = None
    location_postcode: Postcode | None = None
    officer: Practitioner | None = None
    supervisor_review: SupervisorReview | None = None
    victim: PolicePerson | None = None
    victim_safe_contact: SafeContact | None = None
    perpetrators: tuple[PoliceAccused, ...] | None = None
    children: tuple[PoliceChild, ...] | None = None
    other_subjects: tuple[OtherSubject, ...] | None = None
    narrative: str | None = None
    child_wellbeing_indicators: tuple[Shanarri, ...] | None = None
    adult_at_risk: AdultAtRiskTest | None = None
    views: ViewsSought | None = None
    risk_assessment: PoliceRiskAssessment | None = None
    disposal: (
        Literal["no_crime", "charged", "reported_to_prosecutor", "arrested", "in_custody"] | None
    ) = None
    interviewer_gender_requested: Literal["female", "male", "no_preference"] | None = None
    recommended_partners: tuple[Partner, ...] | None = None
    share_decision: ShareDecision | None = None

    @property
    def risk_level(self) -> RiskLevel:
        """The assessed level; ``standard`` when withheld."""
        ra = self.risk_assessment
        return ra.level if ra is not None and ra.level is not None else "standard"
