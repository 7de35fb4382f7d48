"""Information Sharing Agreements: the policy language, its loading, lint and evaluation.

This package performs no I/O: callers read ISA files and pass their bytes, and pass ``now``.
This ``__init__`` is its public surface; code outside the package imports from
``federation.isa`` only. The modules inside, one concept each:

- ``model``       the policy language as strict frozen models; :class:`Isa`
- ``catalogue``   how the engine reads the referral catalogue (injectable)
- ``codes``       the legal codes an ISA may use, in plain words
- ``load``        ``load_isa(source, data)`` with ``file:line`` errors
- ``linting``     ``lint(isa, today=...)``: every DESIGN check
- ``plan``        one flow at one risk level compiled to released / withheld
- ``transforms``  the generalisations an ISA may name (age band, postcode district, year)
- ``evaluation``  ``evaluate(...) -> Decision``, the gates and the decision it builds
- ``decide``      ``evaluate_and_minimise``: decide and minimise in one walk (the sender's path)
- ``received``    ``check_received(...)``: the receiving agent's check
- ``legal``       the legal pairings of each lawful basis (lint errors E11-E16)
- ``elements``    the ICO code's descriptive elements (contacts, sign-off, DPIA, security...)
- ``completeness`` a lint warning for each of those elements an ISA leaves out
- ``explanation`` a plain-English explanation for practitioners (``explanation_elements``,
  ``wording`` and ``rendering`` as text or HTML)
- ``odrl``        ``to_odrl(isa)``: the ISA as an ODRL 2.2 / DPV policy in JSON-LD
- ``registry``    :class:`IsaRegistry`: each ISA id at most once

Rules: deny by default; ``never_share`` and ``deny_fields`` beat every allow list; a registry
holds each ISA id once.
"""

from __future__ import annotations

from federation.isa.catalogue import Catalogue, default_catalogue
from federation.isa.decide import evaluate_and_minimise
from federation.isa.evaluation import Decision, ReferralFacts, WithheldField, evaluate
from federation.isa.explanation import explain, explain_html, explanation
from federation.isa.linting import check_errors, completeness, duplicate_isa_ids, lint
from federation.isa.load import load_isa, parse_isa
from federation.isa.model import (
    DEFAULT_REVIEW,
    RISK_LEVELS,
    Flow,
    Isa,
    IsaDocument,
    Retain,
    ReviewRule,
    RiskLevel,
)
from federation.isa.odrl import to_odrl
from federation.isa.plan import labels_for, never_share_paths
from federation.isa.received import check_received
from federation.isa.registry import IsaRegistry
from federation.isa.transforms import (
    AGE_BANDS,
    age_band,
    is_transformed,
    postcode_district,
    transform_value,
    year_of,
)

__all__ = [
    "AGE_BANDS",
    "DEFAULT_REVIEW",
    "RISK_LEVELS",
    "Catalogue",
    "Decision",
    "Flow",
    "Isa",
    "IsaDocument",
    "IsaRegistry",
    "ReferralFacts",
    "Retain",
    "ReviewRule",
    "RiskLevel",
    "WithheldField",
    "age_band",
    "check_errors",
    "check_received",
    "completeness",
    "default_catalogue",
    "duplicate_isa_ids",
    "evaluate",
    "evaluate_and_minimise",
    "explain",
    "explain_html",
    "explanation",
    "is_transformed",
    "labels_for",
    "lint",
    "load_isa",
    "never_share_paths",
    "parse_isa",
    "postcode_district",
    "to_odrl",
    "transform_value",
    "year_of",
]
