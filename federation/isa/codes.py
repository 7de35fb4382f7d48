"""The legal codes an ISA may use: what each is, its plain words, and which others it needs.

This module performs no I/O. Codes follow shared/domain/isa-and-referrals.md section 2; the project
defines its own codes for DPA 2018 Schedule 1, Schedule 8, the Part 3 law-enforcement purposes and
the DUAA 2025 Annex 1 conditions (DPV has none for them). A code not listed here is a lint warning
(a typo would otherwise pass unnoticed).

Rules:
1. Every code has one kind (:data:`CODE_KINDS`); a code under the wrong key of a lawful basis (a
   Schedule 8 code under ``sch1``) is a lint error.
2. :data:`ART9_NEEDS` is DPA 2018 s10(2)-(3): Art 9(2)(b), (h), (i) and (j) are met only with
   the matching Schedule 1 Part 1 paragraph, and Art 9(2)(g) only with a Schedule 1 Part 2
   condition. The other Art 9(2) points need no Schedule 1 condition.
3. :data:`NEEDS_APD`: Schedule 1 Part 2 conditions need an appropriate policy document (para 5),
   and so does Part 3 sensitive processing under Schedule 8 (s35, s42). The domain brief does not
   list the Part 2 paragraphs excepted by "except as otherwise provided", so every Part 2 code
   here is treated as needing one (none of those defined here is known to be excepted).
4. The brief is silent on whether Schedule 1 Part 1 para 1 (employment) needs an appropriate
   policy document; this module does not require one for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ART9_NEEDS",
    "CODE_KINDS",
    "CODE_WORDS",
    "DPV_LEGAL_BASIS",
    "NEEDS_APD",
    "PUBLIC_AUTHORITY_BARRED",
    "CodeKind",
    "citation",
    "kind_of",
]

CodeKind = Literal[
    "article6",
    "article9",
    "sch1_part1",
    "sch1_part2",
    "sch1_part3",
    "sch8",
    "part3_purpose",
    "rli_condition",
]

_CODES: tuple[tuple[str, CodeKind, str], ...] = (
    ("a6_1_a_consent", "article6", "the person's consent"),
    ("a6_1_b_contract", "article6", "a contract with the person"),
    ("a6_1_c_legal_obligation", "article6", "a legal duty"),
    ("a6_1_d_vital_interests", "article6", "protecting someone's life"),
    ("a6_1_e_public_task", "article6", "carrying out its public duties set out in law"),
    ("a6_1_ea_recognised_legitimate_interest", "article6", "a recognised legitimate interest"),
    ("a6_1_f_legitimate_interests", "article6", "its legitimate interests, after a balancing test"),
    ("a9_2_a", "article9", "the person's explicit consent"),
    ("a9_2_b", "article9", "employment, social security or social protection law"),
    ("a9_2_c", "article9", "protecting someone's life when they cannot consent"),
    ("a9_2_f", "article9", "legal claims or the courts"),
    ("a9_2_g", "article9", "substantial public interest"),
    ("a9_2_h", "article9", "providing health or social care"),
    ("a9_2_i", "article9", "public health"),
    ("a9_2_j", "article9", "archiving, research or statistics"),
    ("sch1_p1_1_employment", "sch1_part1", "employment, social security and social protection"),
    ("sch1_p1_2_health_social_care", "sch1_part1", "health or social care purposes"),
    ("sch1_p1_3_public_health", "sch1_part1", "public health"),
    ("sch1_p1_4_research", "sch1_part1", "archiving, research and statistics"),
    ("sch1_p2_6_statutory", "sch1_part2", "its statutory functions"),
    ("sch1_p2_7_justice", "sch1_part2", "the administration of justice"),
    ("sch1_p2_10_unlawful_acts", "sch1_part2", "preventing or detecting crime"),
    ("sch1_p2_11_protecting_public", "sch1_part2", "protecting the public"),
    ("sch1_p2_17_counselling", "sch1_part2", "counselling and support"),
    ("sch1_p2_18_safeguarding", "sch1_part2", "safeguarding children and adults at risk"),
    (
        "sch1_p2_19_economic_wellbeing",
        "sch1_part2",
        "safeguarding the economic well-being of adults at risk",
    ),
    ("sch1_p3_29_consent", "sch1_part3", "the person's consent (offence information)"),
    ("sch1_p3_30_vital_interests", "sch1_part3", "protecting someone's life (offence information)"),
    ("sch1_p3_33_legal_claims", "sch1_part3", "legal claims (offence information)"),
    (
        "sch1_p3_36_ext_p2",
        "sch1_part3",
        "the same public-interest conditions, extended to offence information",
    ),
    ("sch8_p1_statutory", "sch8", "its statutory functions"),
    ("sch8_p2_justice", "sch8", "the administration of justice"),
    ("sch8_p3_vital_interests", "sch8", "protecting someone's life"),
    ("sch8_p4_safeguarding", "sch8", "safeguarding children and adults at risk"),
    ("sch8_p5_public_domain", "sch8", "information the person has already made public"),
    ("sch8_p6_legal_claims", "sch8", "legal claims"),
    ("sch8_p7_judicial_acts", "sch8", "courts acting in their judicial capacity"),
    ("sch8_p8_fraud", "sch8", "preventing fraud"),
    ("sch8_p9_archiving", "sch8", "archiving, research and statistics"),
    ("s31_prevention_detection", "part3_purpose", "preventing and detecting crime"),
    (
        "s31_protection_public_security",
        "part3_purpose",
        "safeguarding against threats to public security",
    ),
    # UK GDPR Annex 1 (inserted by DUAA 2025 Sch 4); paragraph numbers as enacted.
    (
        "annex1_p1_public_task_request",
        "rli_condition",
        "answering a public body's request for information it needs for its public task",
    ),
    (
        "annex1_p2_national_security",
        "rli_condition",
        "national security, public security or defence",
    ),
    ("annex1_p3_emergencies", "rli_condition", "responding to an emergency"),
    (
        "annex1_p5_crime",
        "rli_condition",
        "detecting, investigating or preventing crime, or catching or prosecuting offenders",
    ),
    ("annex1_p6_safeguarding", "rli_condition", "safeguarding a vulnerable person"),
)

CODE_WORDS: Mapping[str, str] = MappingProxyType({code: words for code, _, words in _CODES})
CODE_KINDS: Mapping[str, CodeKind] = MappingProxyType({code: kind for code, kind, _ in _CODES})

#: DPA 2018 s10(2)-(3): the Schedule 1 condition each Art 9(2) point needs. A set of codes is
#: "one of these"; the kind ``sch1_part2`` means "any Schedule 1 Part 2 condition".
ART9_NEEDS: Mapping[str, frozenset[str] | CodeKind] = MappingProxyType(
    {
        "a9_2_b": frozenset({"sch1_p1_1_employment"}),
        "a9_2_g": "sch1_part2",
        "a9_2_h": frozenset({"sch1_p1_2_health_social_care"}),
        "a9_2_i": frozenset({"sch1_p1_3_public_health"}),
        "a9_2_j": frozenset({"sch1_p1_4_research"}),
    }
)

#: The kinds of condition that need an appropriate policy document (rules 3 and 4).
NEEDS_APD: frozenset[CodeKind] = frozenset({"sch1_part2", "sch8"})

#: Art 6(1)(ea) and (f) are not available to public authorities performing their tasks.
PUBLIC_AUTHORITY_BARRED = frozenset(
    {"a6_1_ea_recognised_legitimate_interest", "a6_1_f_legitimate_interests"}
)

_EU_GDPR = "https://w3id.org/dpv/legal/eu/gdpr#"

#: The W3C DPV IRI closest to each Article 6 / 9 code. DPV's IRIs name the EU GDPR articles,
#: which UK GDPR keeps with the same numbering; (ea) has no DPV term.
DPV_LEGAL_BASIS: Mapping[str, str] = MappingProxyType(
    {
        "a6_1_a_consent": _EU_GDPR + "A6-1-a",
        "a6_1_b_contract": _EU_GDPR + "A6-1-b",
        "a6_1_c_legal_obligation": _EU_GDPR + "A6-1-c",
        "a6_1_d_vital_interests": _EU_GDPR + "A6-1-d",
        "a6_1_e_public_task": _EU_GDPR + "A6-1-e",
        "a6_1_f_legitimate_interests": _EU_GDPR + "A6-1-f",
        **{f"a9_2_{p}": _EU_GDPR + f"A9-2-{p}" for p in "abcdefghij"},
    }
)


def kind_of(code: str) -> CodeKind | None:
    """The kind of a known code; None for a code this module does not know."""
    return CODE_KINDS.get(code)


_CITATIONS: tuple[tuple[str, str], ...] = (
    (r"^a6_1_(ea|[a-f])_", "UK GDPR Art 6(1)({0})"),
    (r"^a9_2_([a-j])$", "UK GDPR Art 9(2)({0})"),
    (r"^sch1_p\d_(\d+)_", "DPA 2018 Sch 1 para {0}"),
    (r"^sch8_p(\d+)_", "DPA 2018 Sch 8 para {0}"),
    (r"^s31_", "DPA 2018 s31"),
    (r"^annex1_p(\d+)_", "UK GDPR Annex 1 para {0}"),
)


def citation(code: str) -> str | None:
    """Where the law says it: ``a9_2_h`` -> ``UK GDPR Art 9(2)(h)``; None if not a known code."""
    if code not in CODE_KINDS:
        return None
    for pattern, template in _CITATIONS:
        found = re.match(pattern, code)
        if found:
            return template.format(*found.groups())
    return None  # pragma: no cover - every known code matches a pattern (tested)
