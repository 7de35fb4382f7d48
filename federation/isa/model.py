"""The ISA policy language: the shape of one ``policies/*.yaml`` file, as strict frozen models.

This module performs no I/O.

Rules:
1. Every model is strict, frozen and forbids unknown keys: a typo in an ISA is an error, never
   silently ignored.
2. Deny by default: a risk level a flow does not mention is ``deny``; a field no field set names
   is withheld; ``never_share`` and ``deny_fields`` always win over an allow list.
3. Practice consent (does the victim know and agree?) is modelled in ``consent_model``, apart
   from the GDPR / DPA 2018 lawful basis, which is recorded per party per purpose.
4. The descriptive elements of the ICO code (parties' contacts, sign-off, necessity, DPIA,
   security, rights, breach, training, termination...) are optional fields
   (:mod:`federation.isa.elements`): files written before them load unchanged, and lint warns
   on each one missing.
5. Field paths are catalogue leaf paths (``victim.date_of_birth``, ``children[].name``); a ``*``
   in a pattern matches any run of characters (``dash.q*``, ``children[].*``).
6. Who may review a REVIEW decision, and within what time, is a :class:`ReviewRule`: on the
   risk level's rule, else on the flow, else :data:`DEFAULT_REVIEW` (``Flow.review_rule``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from federation.isa.catalogue import Catalogue, default_catalogue
from federation.isa.elements import (
    Breach,
    CommonLawConfidentiality,
    Contact,
    DataQuality,
    IndividualsRights,
    InternationalTransfers,
    LinkedDocuments,
    NonCompliance,
    Security,
    SignOff,
    SubjectGroup,
    Termination,
    Training,
)
from federation.topology import AGENCY_ID_PATTERN

__all__ = [
    "DEFAULT_REVIEW",
    "RISK_LEVELS",
    "AgencyId",
    "ByRiskLevel",
    "ConsentModel",
    "ConsentRule",
    "Flow",
    "Isa",
    "IsaDocument",
    "IsaHeader",
    "LawfulBasis",
    "LevelDecision",
    "LevelRule",
    "MustNotInform",
    "Obligations",
    "Party",
    "Purpose",
    "Retain",
    "Review",
    "ReviewRule",
    "ReviewTrigger",
    "RiskLevel",
    "TransformName",
]

RiskLevel = Literal["standard", "medium", "high"]
RISK_LEVELS: tuple[RiskLevel, ...] = ("standard", "medium", "high")
TransformName = Literal["keep", "drop", "age_band", "postcode_district", "year"]
LevelDecision = Literal["permit", "review", "deny"]

AgencyId = Annotated[str, StringConstraints(pattern=AGENCY_ID_PATTERN.pattern)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
IsaId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9._:-]{2,119}$")]
Semver = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
Duration = Annotated[
    str, StringConstraints(pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$", min_length=3)
]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$")]
DpvPurpose = Annotated[str, StringConstraints(pattern=r"^dpv:[A-Z][A-Za-z]+$")]
Text = Annotated[str, StringConstraints(min_length=1)]

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
_STRICT_ALIASED = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)


ReviewTrigger = Literal[
    "change_in_law",
    "lawful_basis_change",
    "personal_data_breach",
    "party_added",
    "party_left",
    "dpia_revised",
]


class Review(BaseModel):
    model_config = _STRICT
    next_review: date
    interval: Duration | None = None
    triggers: list[ReviewTrigger] = []


class IsaHeader(BaseModel):
    """Identity and lifecycle: envelopes cite ``id``, ``version`` and the file's SHA-256."""

    model_config = _STRICT
    id: IsaId
    version: Semver
    title: Text
    status: Literal["draft", "active", "suspended", "terminated"]
    effective_from: date
    effective_to: date | None = None
    review: Review
    synthetic: bool = False

    @model_validator(mode="after")
    def _dates_in_order(self) -> IsaHeader:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self


class Party(BaseModel):
    model_config = _STRICT
    id: AgencyId
    name: Text
    sector: Literal[
        "police",
        "la_social_work",
        "justice_social_work",
        "health",
        "education",
        "housing",
        "third_sector",
        "advocacy_service",
        "marac_coordinator",
    ]
    controller_role: Literal["independent", "joint", "processor"] = "independent"
    competent_authority_part3: bool = False
    public_authority: bool = True
    contacts: list[Contact] = []
    dpo: Contact | None = None
    ico_registration: Text | None = None


class LawfulBasis(BaseModel):
    """One party's legal footing for one purpose (codes explained by ``isa_explain``)."""

    model_config = _STRICT
    regime: Literal["uk_gdpr", "dpa2018_part3"]
    article6: Code | None = None
    rli_condition: Code | None = None
    part3_purpose: Code | None = None
    article9: list[Code] = []
    sch1: list[Code] = []
    sch8: list[Code] = []
    criminal_offence: list[Code] = []
    legal_gateways: list[Text] = []

    @model_validator(mode="after")
    def _regime_fields(self) -> LawfulBasis:
        if self.regime == "uk_gdpr" and self.article6 is None:
            raise ValueError("a uk_gdpr lawful basis needs an article6 code")
        if self.regime == "uk_gdpr" and self.sch8:
            raise ValueError("sch8 conditions apply only to the dpa2018_part3 regime")
        if self.regime == "dpa2018_part3" and (self.article6 or self.article9 or self.sch1):
            raise ValueError("dpa2018_part3 uses sch8 conditions, not article6/article9/sch1")
        return self

    def special_category_condition(self) -> bool:
        """Art 9 + Schedule 1 (UK GDPR), or a Schedule 8 condition (Part 3)."""
        if self.regime == "dpa2018_part3":
            return bool(self.sch8)
        return bool(self.article9) and bool(self.sch1)

    def criminal_offence_condition(self) -> bool:
        """Part 3 processing is law enforcement; UK GDPR needs an Art 10 / Sch 1 condition."""
        return self.regime == "dpa2018_part3" or bool(self.criminal_offence)


class Purpose(BaseModel):
    """Why the sharing happens; necessity, proportionality and benefits (ICO code heading 1)."""

    model_config = _STRICT
    id: Slug
    description: Text
    lawful_basis: dict[AgencyId, LawfulBasis]
    necessity: Text | None = None
    proportionality: Text | None = None
    benefits: Text | None = None
    alternatives_considered: list[Text] = []
    dpv: list[DpvPurpose] = []


class ConsentRule(BaseModel):
    """Practice consent at one risk level, and what happens when it is not met."""

    model_config = _STRICT
    requires: Literal["not_required", "agreement_given", "agreement_or_reason_recorded"]
    otherwise: Literal["deny", "review"] = "deny"


class ConsentModel(BaseModel):
    """Practice consent per risk level; what the person is told; the common-law duty."""

    model_config = _STRICT
    standard: ConsentRule
    medium: ConsentRule
    high: ConsentRule
    person_told: Text | None = None
    common_law_confidentiality: CommonLawConfidentiality | None = None


class ReviewRule(BaseModel):
    """Who may approve, narrow or return a referral held for review (a person asserting this
    ``role``, never its submitter), and ``within`` what time before it is overdue and escalates."""

    model_config = _STRICT
    role: Slug
    within: Duration


#: Rule 6: the review rule where an ISA names none.
DEFAULT_REVIEW = ReviewRule(role="reviewer", within="P2D")


class LevelRule(BaseModel):
    model_config = _STRICT
    decision: LevelDecision
    field_sets: list[Slug] = []
    fields: list[Text] = []
    transforms: dict[Text, TransformName] = {}
    review: ReviewRule | None = None


class ByRiskLevel(BaseModel):
    """A level left out means ``deny``."""

    model_config = _STRICT
    standard: LevelRule | None = None
    medium: LevelRule | None = None
    high: LevelRule | None = None

    def rule(self, level: RiskLevel) -> LevelRule | None:
        rule: LevelRule | None = getattr(self, level)
        return rule


class Retain(BaseModel):
    model_config = _STRICT_ALIASED
    period: Duration
    start: Literal["received", "case_closed", "last_activity"] = Field(alias="from")


class MustNotInform(BaseModel):
    model_config = _STRICT
    who: list[Literal["perpetrator", "victim", "child", "third_party"]] = Field(min_length=1)


class Obligations(BaseModel):
    """Duties that travel with the data; the recipient enforces them."""

    model_config = _STRICT
    retain: Retain | None = None
    no_onward_disclosure: bool = False
    must_not_inform: MustNotInform | None = None
    notify_originator: list[
        Literal["rectification", "erasure_request", "breach", "onward_request", "sar_received"]
    ] = []
    #: DPA 2018 s62 logging: each disclosure under the flow must name the person and their
    #: justification (enforced by both agents, ``agent.service`` rule 10)
    log: Literal["dpa2018_s62"] | None = None


class Flow(BaseModel):
    model_config = _STRICT_ALIASED
    id: Slug
    description: str = ""
    sender: list[AgencyId] = Field(alias="from", min_length=1)
    to: list[AgencyId] = Field(min_length=1)
    purpose: Slug
    message_types: list[Slug] = Field(min_length=1)
    consent: ConsentModel | None = None
    by_risk_level: ByRiskLevel
    transforms: dict[Text, TransformName] = {}
    deny_fields: list[Text] = []
    obligations: Obligations = Obligations()
    trigger: Literal["event", "scheduled", "on_request"] | None = None
    frequency: Text | None = None
    channel: Text | None = None
    review: ReviewRule | None = None

    def review_rule(self, level: RiskLevel) -> ReviewRule:
        """Rule 6: who reviews a REVIEW decision of this flow at ``level``, and how fast."""
        rule = self.by_risk_level.rule(level)
        if rule is not None and rule.review is not None:
            return rule.review
        return self.review or DEFAULT_REVIEW


class IsaDocument(BaseModel):
    """One ISA file, exactly as written."""

    model_config = _STRICT
    isa: IsaHeader
    parties: list[Party] = Field(min_length=1)
    purposes: list[Purpose] = Field(min_length=1)
    consent_model: ConsentModel
    field_sets: dict[Slug, list[Text]] = {}
    flows: list[Flow] = []
    never_share: list[Text] = []
    data_subject_groups: list[SubjectGroup] = []
    sign_off: list[SignOff] = []
    linked_documents: LinkedDocuments | None = None
    international_transfers: InternationalTransfers | None = None
    security: Security | None = None
    data_quality: DataQuality | None = None
    individuals_rights: IndividualsRights | None = None
    breach: Breach | None = None
    non_compliance: NonCompliance | None = None
    training: Training | None = None
    termination: Termination | None = None


class Isa(BaseModel):
    """A loaded ISA: the document, where it came from, and the SHA-256 of its exact bytes.

    Build it with :func:`federation.isa.load_isa`; it keeps (privately) the line of every key for
    lint, the catalogue it was checked against, and a memo of compiled flow plans.
    """

    model_config = _STRICT
    doc: IsaDocument
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    source: str

    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)
    _catalogue: Catalogue | None = PrivateAttr(default=None)
    _memo: dict[Any, Any] = PrivateAttr(default_factory=dict)

    @property
    def id(self) -> str:
        return self.doc.isa.id

    @property
    def version(self) -> str:
        return self.doc.isa.version

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue or default_catalogue

    def line_of(self, *path: str | int) -> int:
        """The YAML line of ``path`` (or of its nearest enclosing key); 1 if unknown."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1

    def party(self, agency: str) -> Party | None:
        return next((p for p in self.doc.parties if p.id == agency), None)

    def purpose(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.doc.purposes if p.id == purpose_id), None)

    def flows_for(self, sender: str, recipient: str, purpose: str, message_type: str) -> list[Flow]:
        """Every flow covering (from, to, purpose, type), in file order."""
        return [
            f
            for f in self.doc.flows
            if sender in f.sender
            and recipient in f.to
            and f.purpose == purpose
            and message_type in f.message_types
        ]

    def consent_for(self, flow: Flow) -> ConsentModel:
        return flow.consent or self.doc.consent_model
