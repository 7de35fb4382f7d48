"""``support_referral``: a referral to an IDVA, outreach, refuge or Women's Aid service.

This module performs no I/O.

Rules:
1. Fields follow published third-sector referral forms and ASSIST intake (domain notes
   section 3.5).
2. ``refuge_location`` may be on the form; every ISA must withhold it (``never_share``).
3. ``risk_level`` is ``risk.level``; ``standard`` when withheld.
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
    "Client",
    "ClientAddress",
    "Disability",
    "Immigration",
    "Justice",
    "SupportChild",
    "SupportPerpetrator",
    "SupportReferral",
    "SupportRisk",
]

Gender = Literal["female", "male", "other", "not_stated"]
AbuseType = Literal[
    "physical", "sexual", "emotional", "economic", "coercive_control", "stalking", "online",
    "honour_based", "forced_marriage",
]
SupportNeed = Literal[
    "housing", "refuge", "financial", "legal", "mental_health", "substance_use", "complex_needs",
    "children", "immigration",
]
Service = Literal[
    "idva", "outreach", "refuge", "court_advocacy", "group_work", "children_worker"
]
Order = Literal["non_harassment_order", "interdict", "non_molestation_order", "dvpo"]


class Disability(StrictModel):
    """Whether the client identifies as disabled, and details."""

    self_identifies: bool | None = None
    details: str | None = None


class Immigration(StrictModel):
    """Immigration facts that change what support is available."""

    no_recourse_to_public_funds: bool | None = None
    indefinite_leave: bool | None = None


class Client(StrictModel):
    """The person being referred for support."""

    name: str | None = None
    aka: str | None = None
    date_of_birth: DateOfBirth | None = None
    gender: Gender | None = None
    ethnicity: str | None = None
    first_language: str | None = None
    interpreter_required: bool | None = None
    disability: Disability | None = None
    pregnant: bool | None = None
    sexual_orientation: str | None = None
    religion: str | None = None
    ni_number: str | None = None
    immigration: Immigration | None = None


class ClientAddress(StrictModel):
    """Where the client lives now and the address they are fleeing."""

    current: Address | None = None
    current_postcode: Postcode | None = None
    fleeing: Address | None = None
    fleeing_postcode: Postcode | None = None
    date_left: EventDate | None = None


class SupportPerpetrator(StrictModel):
    """The person the client is at risk from."""

    name: str | None = None
    date_of_birth: DateOfBirth | None = None
    ethnicity: str | None = None
    occupation: str | None = None
    workplace: str | None = None
    location: Address | None = None
    knows_client_address: bool | None = None
    lives_with_client: bool | None = None
    criminal_history: str | None = None


class SupportChild(StrictModel):
    """A child of the client or in the household."""

    name: str | None = None
    gender: Gender | None = None
    date_of_birth: DateOfBirth | None = None
    lives_with_client: bool | None = None
    perpetrators_child: bool | None = None
    support_needs: str | None = None
    social_work_involvement: bool | None = None


class SupportRisk(StrictModel):
    """The referrer's risk assessment."""

    dash_score: int | None = Field(default=None, ge=0, le=24)
    level: RiskLevel | None = None
    assessed_at: EventDate | None = None


class Justice(StrictModel):
    """Police and court involvement."""

    police_involved: bool | None = None
    officer_contact: str | None = None
    crime_ref: str | None = None
    bail_conditions: str | None = None
    address_flagged: bool | None = None
    next_court_date: EventDate | None = None
    orders: tuple[Order, ...] | None = None


class SupportReferral(Referral):
    """A referral for domestic-abuse support (IDVA, outreach, refuge, ASSIST)."""

    message_type: ClassVar[str] = "support_referral"
    referral_ref: str | None = None
    referral_date: EventDate | None = None
    referral_source: (
        Literal[
            "self", "police", "health", "social_work", "housing", "assist_auto_police", "other"
        ]
        | None
    ) = None
    referrer: Practitioner | None = None
    consent_scope_agencies: tuple[str, ...] | None = None
    client: Client | None = None
    safe_contact: SafeContact | None = None
    address: ClientAddress | None = None
    refuge_location: str | None = None
    perpetrator: SupportPerpetrator | None = None
    relationship: Literal["partner", "ex_partner", "family_member", "other"] | None = None
    relationship_length: str | None = None
    abuse_types: tuple[AbuseType, ...] | None = None
    children: tuple[SupportChild, ...] | None = None
    risk: SupportRisk | None = None
    justice: Justice | None = None
    other_professionals: tuple[Practitioner, ...] | None = None
    support_needs: tuple[SupportNeed, ...] | None = None
    services_requested: tuple[Service, ...] | None = None
    welfare_check_if_uncontactable: Literal["contact_police", "do_not_contact_police"] | None = (
        None
    )

    @property
    def risk_level(self) -> RiskLevel:
        """The referrer's assessed level; ``standard`` when withheld."""
        risk = self.risk
        return risk.level if risk is not None and risk.level is not None else "standard"
