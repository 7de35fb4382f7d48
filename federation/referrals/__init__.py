"""Referral message types, their field catalogue, parsing and JSON-ready output.

This package performs no I/O. Five message types (``MESSAGE_TYPES``): ``marac_referral``,
``dash_risk_assessment``, ``police_concern``, ``support_referral``,
``caledonian_partner_contact``. Every model is strict, frozen and forbids unknown fields; every
field except ``synthetic`` is optional because recipients get minimised payloads
(``REQUIRED_ON_SUBMIT`` says what a sender must supply). Each referral exposes ``risk_level``
(derived from its own content) and ``consent`` (practice consent, not the GDPR lawful basis).

Modules: ``common`` (base types, generalisable values), ``dash`` (the checklist and banding),
``marac``, ``police``, ``support``, ``caledonian`` (the types), ``models`` (registry),
``kinds``/``labels``/``tables``/``catalogue`` (the field catalogue), ``paths`` (leaf walker),
``parse`` (``parse_payload``, ``payload_dict``).
"""

from federation.referrals.catalogue import TRANSFORMS, DataClass, FieldInfo, SubjectRole, catalogue
from federation.referrals.common import (
    AGE_BANDS,
    RISK_LEVELS,
    PracticeConsent,
    Referral,
    RiskLevel,
)
from federation.referrals.dash import DASH_LABELS, DASH_QUESTIONS, DashAssessment, band
from federation.referrals.models import MESSAGE_TYPES
from federation.referrals.parse import REQUIRED_ON_SUBMIT, parse_payload, payload_dict
from federation.referrals.paths import leaf_fields

__all__ = [
    "AGE_BANDS",
    "DASH_LABELS",
    "DASH_QUESTIONS",
    "MESSAGE_TYPES",
    "REQUIRED_ON_SUBMIT",
    "RISK_LEVELS",
    "TRANSFORMS",
    "DashAssessment",
    "DataClass",
    "FieldInfo",
    "PracticeConsent",
    "Referral",
    "RiskLevel",
    "SubjectRole",
    "band",
    "catalogue",
    "leaf_fields",
    "parse_payload",
    "payload_dict",
]
