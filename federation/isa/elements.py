"""The descriptive elements of an ISA (domain brief section 1.6) as strict frozen models.

This module performs no I/O.

Rules:
1. These record what the ICO Data Sharing Code, WASPI and the Scottish toolkit expect an ISA to
   say; the engine does not enforce them (the flows do that). Every block is optional, so an ISA
   written before they existed still loads: lint warns on each one missing
   (:mod:`federation.isa.completeness`).
2. Strict, frozen, no unknown keys, like the rest of the language.
3. Sign-off is the declared signatories only; a cryptographic signature comes later.
4. Free text is for people; lists of codes are for machines. Where the brief names a fixed
   vocabulary (review triggers, sign-off roles, data-subject groups) it is a ``Literal``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from federation.topology import AGENCY_ID_PATTERN

__all__ = [
    "Breach",
    "CommonLawConfidentiality",
    "Contact",
    "DataQuality",
    "Dpia",
    "IndividualsRights",
    "InternationalTransfers",
    "LinkedDocuments",
    "NonCompliance",
    "Security",
    "SignOff",
    "SubjectGroup",
    "Termination",
    "Training",
]

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)

AgencyId = Annotated[str, StringConstraints(pattern=AGENCY_ID_PATTERN.pattern)]
Text = Annotated[str, StringConstraints(min_length=1)]
Duration = Annotated[
    str, StringConstraints(pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$", min_length=3)
]
#: An ISO 8601 duration that may have hours (breach deadlines: ``PT24H``, ``PT72H``).
ShortDuration = Annotated[str, StringConstraints(pattern=r"^P(\d+D)?(T\d+H)?$", min_length=3)]
SubjectGroup = Literal[
    "victim", "perpetrator", "child", "household_member", "third_party", "practitioner"
]


class Contact(BaseModel):
    """A named role and how to reach it (synthetic addresses only in this repository)."""

    model_config = _STRICT
    role: Text
    name: Text | None = None
    email: Text | None = None
    phone: Text | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if self.email is None and self.phone is None:
            raise ValueError("a contact needs an email or a phone number")
        return self


class SignOff(BaseModel):
    """One declared signatory (ICO Accountability Framework: senior sign-off)."""

    model_config = _STRICT
    party: AgencyId
    role: Literal["chief_officer", "caldicott_guardian", "siro", "dpo", "director"]
    name: Text
    signed_on: date | None = None


class Dpia(BaseModel):
    model_config = _STRICT
    ref: Text
    outcome: Text | None = None
    completed_on: date | None = None


class LinkedDocuments(BaseModel):
    """Evidence the ISA relies on, each by reference (Art 35, Sch 1 paras 5 and 39, s42)."""

    model_config = _STRICT
    dpia: Dpia | None = None
    appropriate_policy_documents: dict[AgencyId, Text] = {}
    legitimate_interests_assessments: dict[AgencyId, Text] = {}
    operating_protocol: Text | None = None


class CommonLawConfidentiality(BaseModel):
    """The common-law duty of confidence is separate from the GDPR basis (brief section 2.5)."""

    model_config = _STRICT
    basis: list[Literal["consent", "overriding_public_interest", "legal_requirement"]] = Field(
        min_length=1
    )
    note: Text | None = None


class InternationalTransfers(BaseModel):
    """Art 30(1)(e); deny by default: a permitted transfer must say where and under what."""

    model_config = _STRICT
    permitted: bool
    destinations: list[Text] = []
    safeguards: Text | None = None

    @model_validator(mode="after")
    def _said_where(self) -> InternationalTransfers:
        if self.permitted and (not self.destinations or self.safeguards is None):
            raise ValueError("a permitted transfer needs destinations and safeguards")
        return self


class Security(BaseModel):
    """Art 32 measures, in words (the transport and payload encryption are the system's)."""

    model_config = _STRICT
    min_marking: Literal["OFFICIAL", "OFFICIAL-SENSITIVE"] | None = None
    transport: Text | None = None
    at_rest: Text | None = None
    access: Text | None = None
    assurance: list[Text] = []


class DataQuality(BaseModel):
    model_config = _STRICT
    standards: list[Text] = []
    fact_and_opinion_marked: bool | None = None
    accuracy_checks: Text | None = None


class IndividualsRights(BaseModel):
    """Access, rectification, objection and complaints; transparency and privacy notices."""

    model_config = _STRICT
    contact: Text
    privacy_notices: dict[AgencyId, Text] = {}
    subject_access: Text | None = None
    rectification: Text | None = None
    objection: Text | None = None
    complaints: Text | None = None
    transparency_exemptions: list[Text] = []


class Breach(BaseModel):
    """Art 33/34 (Part 3: s67/s68); the originator is told first and leads on contact."""

    model_config = _STRICT
    notify_originator_within: ShortDuration
    notify_ico_within: ShortDuration | None = None
    notify_subjects: Text | None = None


class NonCompliance(BaseModel):
    model_config = _STRICT
    actions: list[Literal["suspend_party", "suspend_flow", "escalate_to_signatories"]] = Field(
        min_length=1
    )
    staff_sanctions: Text | None = None


class Training(BaseModel):
    model_config = _STRICT
    requirement: Text
    guidance: Text | None = None
    refresh: Duration | None = None


class Termination(BaseModel):
    """What ends the agreement and what happens to the data already shared."""

    model_config = _STRICT
    notice: Duration | None = None
    received_data: Literal["delete", "return", "keep_under_own_retention"]
    evidence: Text | None = None
    procedure: Text | None = None
