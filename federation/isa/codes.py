"""The legal codes an ISA may use, with plain-English words for ``policy explain``.

This module performs no I/O. Codes follow shared/domain/isa-and-referrals.md section 2; the project
defines its own codes for DPA 2018 Schedule 1, Schedule 8 and the DUAA 2025 Annex 1 conditions.
A code not listed here is a lint warning (a typo would otherwise pass unnoticed).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CODE_WORDS", "PUBLIC_AUTHORITY_BARRED"]

CODE_WORDS: Mapping[str, str] = {
    "a6_1_a_consent": "the person's consent",
    "a6_1_c_legal_obligation": "a legal duty",
    "a6_1_d_vital_interests": "protecting someone's life",
    "a6_1_e_public_task": "carrying out its public duties set out in law",
    "a6_1_ea_recognised_legitimate_interest": "safeguarding vulnerable people (a recognised "
    "legitimate interest open to charities)",
    "a6_1_f_legitimate_interests": "its legitimate interests, after a balancing test",
    "a6_1_b_contract": "a contract with the person",
    "a9_2_a": "the person's explicit consent",
    "a9_2_b": "employment, social security or social protection law",
    "a9_2_c": "protecting someone's life when they cannot consent",
    "a9_2_g": "substantial public interest",
    "a9_2_f": "legal claims or the courts",
    "a9_2_h": "providing health or social care",
    "sch1_p2_6_statutory": "its statutory functions",
    "sch1_p2_7_justice": "the administration of justice",
    "sch1_p2_10_unlawful_acts": "preventing or detecting crime",
    "sch1_p2_11_protecting_public": "protecting the public",
    "sch1_p2_17_counselling": "counselling and support",
    "sch1_p2_18_safeguarding": "safeguarding children and adults at risk",
    "sch1_p3_29_consent": "the person's consent (offence information)",
    "sch1_p3_30_vital_interests": "protecting someone's life (offence information)",
    "sch1_p3_33_legal_claims": "legal claims (offence information)",
    "sch1_p3_36_ext_p2": "the same public-interest conditions, extended to offence information",
    "sch8_p1_statutory": "its statutory functions (law enforcement)",
    "sch8_p2_justice": "the administration of justice",
    "sch8_p3_vital_interests": "protecting someone's life",
    "sch8_p4_safeguarding": "safeguarding children and adults at risk (law enforcement)",
    "s31_prevention_detection": "preventing and detecting crime",
    "s31_protection_public_security": "safeguarding against threats to public security",
}

#: Art 6(1)(ea) and (f) are not available to public authorities performing their tasks.
PUBLIC_AUTHORITY_BARRED = frozenset(
    {"a6_1_ea_recognised_legitimate_interest", "a6_1_f_legitimate_interests"}
)
