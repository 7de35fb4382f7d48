"""``marac_referral`` and ``dash_risk_assessment``: the SafeLives MARAC form and DASH checklist.

This module performs no I/O.

Rules:
1. Fields follow the SafeLives MARAC referral form (2015) plus common local additions
   (domain notes section 3.2); the DASH checklist is embedded as ``dash``.
2. ``risk_level`` comes from the DASH (banding raised by professional judgement); with the DASH
   withheld it is ``standard``, the level that releases least.
3. The victim's refuge address may appear on the form; every ISA must withhold it (the
   catalogue labels it ``never_share``).
4. Stated criteria must agree with the form: ``visible_high_risk`` iff DASH score >= 14,
   ``potential_escalation`` iff 3+ police incidents in 12 months (checked when both are known).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from federation.referrals.common import (
    Address,
    DateOfBirth,
    EventDate,
    Postcode,
    Practitioner,
    Referral,
    RiskLevel,
    SafeContact,
    StrictModel,
)
from federation.referrals.dash import DashAssessment

__all__ = [
    "POTENTIAL_ESCALATION",
    "VISIBLE_HIGH_RISK",
    "Child",
    "DashPerpetrator",
    "DashRiskAssessment",
    "DashVictim",
    "Diversity",
    "MaracCriteria",
    "MaracReferral",
    "MaracVictim",
    "Perpetrator",
    "PreviousMarac",
]

VISIBLE_HIGH_RISK = 14
"""SafeLives: 14 or more ``yes`` answers on the DASH is visible high risk."""
POTENTIAL_ESCALATION = 3
"""SafeLives: 3 or more police-reported incidents in 12 months is potential escalation."""

Gender = Literal["female", "male", "other", "not_stated"]
Relationship = Literal["partner", "ex_partner", "family_member", "other"]


class MaracVictim(StrictModel):
    """The victim/survivor as the MARAC form records them."""

    name: str | None = None
    aliases: tuple[str, ...] | None = None
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    address: Address | None = None
    postcode: Postcode | None = None
    phone: str | None = None
    safe_to_call: bool | None = None
    contact_notes: str | None = None
    safe_contact: SafeContact | None = None
    refuge_address: str | None = None
    pregnant: bool | None = None
    ethnicity: str | None = None
    first_language: str | None = None
    interpreter_required: bool | None = None
    mental_health: str | None = None
    substance_use: str | None = None
    occupation: str | None = None
    gp_practice: str | None = None


class Diversity(StrictModel):
    """SafeLives diversity monitoring (special category)."""

    bme: bool | None = None
    disabled: bool | None = None
    lgbt: bool | None = None


class Perpetrator(StrictModel):
    """A person the victim names as (alleged) abuser."""

    name: str | None = None
    aliases: tuple[str, ...] | None = None
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    address: Address | None = None
    postcode: Postcode | None = None
    relationship_to_victim: Relationship | None = None
    criminal_history: str | None = None
    bail_conditions: str | None = None
    orders: tuple[str, ...] | None = None


class Child(StrictModel):
    """A child in the household or connected to the victim or perpetrator."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    relationship_to_victim: Literal["child", "stepchild", "grandchild", "other"] | None = None
    relationship_to_perpetrator: (
        Literal["child", "stepchild", "grandchild", "none", "other"] | None
    ) = None
    lives_with_victim: bool | None = None
    address: Address | None = None
    school: str | None = None


class MaracCriteria(StrictModel):
    """Which SafeLives MARAC referral criteria apply."""

    visible_high_risk: bool | None = None
    professional_judgement: bool | None = None
    potential_escalation: bool | None = None
    repeat: bool | None = None


class PreviousMarac(StrictModel):
    """An earlier listing of this victim at a MARAC."""

    date_listed: EventDate | None = None
    case_number: str | None = None


class MaracReferral(Referral):
    """A referral of a high-risk domestic-abuse case to a MARAC."""

    message_type: ClassVar[str] = "marac_referral"
    referral_ref: str | None = None
    referral_date: EventDate | None = None
    referring_agency: str | None = None
    referrer: Practitioner | None = None
    victim: MaracVictim | None = None
    diversity: Diversity | None = None
    perpetrators: tuple[Perpetrator, ...] | None = None
    children: tuple[Child, ...] | None = None
    reason_for_referral: str | None = None
    criteria: MaracCriteria | None = None
    police_incidents_last_12_months: int | None = Field(default=None, ge=0)
    previous_marac: PreviousMarac | None = None
    dash: DashAssessment | None = None
    afraid_of: str | None = None
    safe_to_talk_to: str | None = None
    not_safe_to_talk_to: str | None = None
    referred_to_other_marac: bool | None = None
    crime_ref: str | None = None
    incident_ref: str | None = None
    officer_in_charge: str | None = None

    @property
    def risk_level(self) -> RiskLevel:
        """The DASH risk level (banding raised by judgement); ``standard`` if withheld."""
        return self.dash.risk_level if self.dash else "standard"

    @model_validator(mode="after")
    def _criteria_agree(self) -> MaracReferral:
        """Stated criteria must agree with the DASH score and the incident count, when known."""
        criteria = self.criteria
        if criteria is None:
            return self
        score = self.dash.computed_score if self.dash else None
        if score is not None and _differs(criteria.visible_high_risk, score >= VISIBLE_HIGH_RISK):
            raise _criterion("visible_high_risk", f"the DASH score is {score}")
        incidents = self.police_incidents_last_12_months
        if incidents is not None and _differs(
            criteria.potential_escalation, incidents >= POTENTIAL_ESCALATION
        ):
            raise _criterion("potential_escalation", f"{incidents} incidents are recorded")
        return self


def _differs(stated: bool | None, fact: bool) -> bool:
    return stated is not None and stated != fact


def _criterion(name: str, fact: str) -> PydanticCustomError:
    detail = f"does not agree with the form: {fact}"
    return PydanticCustomError(
        "marac_criteria", "{detail}", {"field": f"criteria.{name}", "detail": detail}
    )


class DashVictim(StrictModel):
    """Who the checklist was completed with."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    postcode: Postcode | None = None


class DashPerpetrator(StrictModel):
    """Who the checklist is about."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    relationship_to_victim: Relationship | None = None


class DashRiskAssessment(Referral):
    """A standalone DASH checklist sent to a partner agency."""

    message_type: ClassVar[str] = "dash_risk_assessment"
    assessment_ref: str | None = None
    victim: DashVictim | None = None
    perpetrator: DashPerpetrator | None = None
    dash: DashAssessment | None = None

    @property
    def risk_level(self) -> RiskLevel:
        """The DASH risk level (banding raised by judgement); ``standard`` if withheld."""
        return self.dash.risk_level if self.dash else "standard"
