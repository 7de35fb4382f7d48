"""Building blocks shared by every referral message type.

This module performs no I/O.

Rules:
1. Every model is strict and frozen and forbids unknown fields (``StrictModel``).
2. Every field is optional except ``synthetic``: a recipient receives a *minimised* payload.
   What a sender must supply is checked separately (``REQUIRED_ON_SUBMIT``, see ``parse``).
3. A field that an ISA may generalise carries a ``Generalisable`` marker naming its transform.
   Its generalised form (an age band, a postcode district, a year) is accepted only when the
   payload is validated with the context ``{"minimised": True}``; a sender's full payload must
   carry the real value.
4. Practice consent (does the victim know and agree?) is NOT the GDPR lawful basis; the lawful
   basis travels in the envelope header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

__all__ = [
    "AGE_BANDS",
    "RISK_LEVELS",
    "Address",
    "AgeBand",
    "DateOfBirth",
    "EventDate",
    "EventTime",
    "Generalisable",
    "Postcode",
    "PracticeConsent",
    "Practitioner",
    "Referral",
    "RiskLevel",
    "SafeContact",
    "StrictModel",
    "YesNoUnknown",
    "higher_level",
    "is_minimised",
]

RiskLevel = Literal["standard", "medium", "high"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("standard", "medium", "high")
YesNoUnknown = Literal["yes", "no", "unknown"]
AgeBand = Literal["0-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
AGE_BANDS: tuple[str, ...] = ("0-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")

_FULL_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}$")
_POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")


class StrictModel(BaseModel):
    """Base for every wire and domain value: strict, frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


@dataclass(frozen=True, slots=True)
class Generalisable:
    """Marks a leaf whose value an ISA may replace by ``transform`` (age_band, ...)."""

    transform: str


def is_minimised(info: ValidationInfo) -> bool:
    """True when the payload is being validated as a recipient's minimised copy."""
    context = info.context
    return isinstance(context, dict) and context.get("minimised") is True


def _full_date_unless_minimised(value: object, info: ValidationInfo) -> object:
    if not isinstance(value, date) and not is_minimised(info):
        raise ValueError("a generalised value is accepted only in a minimised payload")
    return value


def _postcode(value: str, info: ValidationInfo) -> str:
    if _FULL_POSTCODE.match(value):
        return value
    if _POSTCODE_DISTRICT.match(value) and is_minimised(info):
        return value
    if _POSTCODE_DISTRICT.match(value):
        raise ValueError("a postcode district is accepted only in a minimised payload")
    raise ValueError("not a UK postcode in the form 'QX1 2AB'")


_Year = Annotated[int, Field(ge=1900, le=2100)]

DateOfBirth = Annotated[
    date | AgeBand, AfterValidator(_full_date_unless_minimised), Generalisable("age_band")
]
"""A date of birth; an age band (``"25-34"``) in a minimised payload."""

EventDate = Annotated[
    date | _Year, AfterValidator(_full_date_unless_minimised), Generalisable("year")
]
"""A calendar date; a year (``2026``) in a minimised payload."""

EventTime = Annotated[
    datetime | _Year, AfterValidator(_full_date_unless_minimised), Generalisable("year")
]
"""A date and time; a year in a minimised payload."""

Postcode = Annotated[str, AfterValidator(_postcode), Generalisable("postcode_district")]
"""A full UK postcode; a postcode district (``"QX1"``) in a minimised payload."""

Address = Annotated[str, Field(min_length=1), Generalisable("postcode_district")]
"""A one-line postal address; an ISA may replace it with the postcode district."""


def higher_level(a: RiskLevel, b: RiskLevel) -> RiskLevel:
    """The higher of two risk levels."""
    return a if RISK_LEVELS.index(a) >= RISK_LEVELS.index(b) else b


class PracticeConsent(StrictModel):
    """Does the victim know about the referral and agree to it? (Not the GDPR lawful basis.)"""

    victim_aware: YesNoUnknown | None = None
    agreement: Literal["given", "refused", "not_sought", "cannot_be_given"] | None = None
    reason_not_sought: (
        Literal[
            "risk_level_high",
            "child_at_risk",
            "seeking_would_increase_risk",
            "unable_to_contact",
            "lacks_capacity",
            "other",
        ]
        | None
    ) = None
    recorded_at: EventDate | None = None


class SafeContact(StrictModel):
    """How and when the victim can be contacted safely."""

    phone: str | None = None
    email: str | None = None
    safe_times: str | None = None
    safe_to_leave_message: bool | None = None
    code_word: str | None = None


class Practitioner(StrictModel):
    """A professional named on the form (referrer, officer, worker)."""

    name: str | None = None
    role: str | None = None
    agency: str | None = None
    phone: str | None = None
    email: str | None = None


class Referral(StrictModel):
    """Common base of every message type: ``synthetic``, practice ``consent``, ``risk_level``."""

    message_type: ClassVar[str] = ""
    synthetic: bool
    consent: PracticeConsent | None = None

    @property
    def risk_level(self) -> RiskLevel:
        """The risk level this payload's own content supports (``standard`` if none)."""
        return "standard"
