"""``caledonian_partner_contact``: men's worker -> women's worker referral (Caledonian System).

This module performs no I/O.

Rules:
1. The Caledonian System is a court-ordered programme for men convicted of domestic-abuse
   offences; the Women's Service contacts their partners and ex-partners (domain notes 3.6).
2. The flow is asymmetric: facts about the man may go to the women's service, but nothing the
   partner says may go back to him (the catalogue labels partner fields
   ``must_not_disclose_to:perpetrator``).
3. ``risk_level`` is the men's worker's ``assessed_risk.level``; ``standard`` when withheld.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

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

__all__ = [
    "AssessedRisk",
    "CaledonianChild",
    "CaledonianPartnerContact",
    "CourtOrder",
    "ProgrammeMan",
    "ProgrammePartner",
]


class CourtOrder(StrictModel):
    """The order that put the man on the programme."""

    order_type: Literal["community_payback_order", "licence"] | None = None
    made_on: EventDate | None = None
    court: str | None = None
    duration_months: int | None = Field(default=None, ge=1, le=120)


class ProgrammeMan(StrictModel):
    """The man on the programme (the perpetrator)."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    address: Address | None = None
    postcode: Postcode | None = None
    convictions: str | None = None
    programme_stage: Literal["assessment", "preparation", "group", "post_group"] | None = None


class ProgrammePartner(StrictModel):
    """The man's partner or ex-partner whom the Women's Service will contact."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    relationship: Literal["partner", "ex_partner"] | None = None
    living_with_man: bool | None = None
    address: Address | None = None
    postcode: Postcode | None = None
    safe_contact: SafeContact | None = None


class CaledonianChild(StrictModel):
    """A child of the partner or the man."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    lives_with_partner: bool | None = None
    mans_child: bool | None = None


class AssessedRisk(StrictModel):
    """The men's worker's assessment of the risk the man poses."""

    level: RiskLevel | None = None
    tool: Literal["sara_v3", "dash", "professional_judgement"] | None = None
    assessed_at: EventDate | None = None
    summary: str | None = None


class CaledonianPartnerContact(Referral):
    """A referral of the man's partner to the Caledonian Women's Service."""

    message_type: ClassVar[str] = "caledonian_partner_contact"
    referral_ref: str | None = None
    referral_date: EventDate | None = None
    court_order: CourtOrder | None = None
    mens_worker: Practitioner | None = None
    man: ProgrammeMan | None = None
    partner: ProgrammePartner | None = None
    children: tuple[CaledonianChild, ...] | None = None
    assessed_risk: AssessedRisk | None = None

    @property
    def risk_level(self) -> RiskLevel:
        """The men's worker's assessed level; ``standard`` when withheld."""
        risk = self.assessed_risk
        return risk.level if risk is not None and risk.level is not None else "standard"
