"""Lint for the legal pairings of each lawful basis: the conditions the law requires together.

This module performs no I/O. Every problem is at the YAML line of the code that is wrong.
The law is UK GDPR Art 6, 9 and 10 and the Data Protection Act 2018 (s10, s30-s35, s42,
Schedules 1 and 8), as summarised in shared/domain/isa-and-referrals.md section 2.

Errors:
  E11 a public authority relying on Art 6(1)(ea) or (f) for its tasks (s70(2)(c) DUAA 2025).
  E12 a known code under the wrong key (a Schedule 8 code under ``sch1``; a Schedule 1 Part 3
      code under ``sch1`` instead of ``criminal_offence``).
  E13 an Art 9(2) point without the Schedule 1 condition DPA 2018 s10 requires (9(2)(b) needs
      para 1, (g) a Part 2 condition, (h) para 2, (i) para 3, (j) para 4).
  E14 Schedule 1 para 36 (Part 2 conditions extended to criminal offence data) without a Part 2
      condition for it to extend.
  E15 Part 3 (law enforcement) for a party that is not a competent authority, or a
      law-enforcement purpose (``part3_purpose``) outside Part 3.
  E16 an Annex 1 condition (``rli_condition``) on a basis other than Art 6(1)(ea).
Warnings:
  W5 a Schedule 1 Part 1 or Part 2 condition whose Art 9(2) point the basis does not cite (and,
     for Part 2, not extended by para 36 to criminal offence data either): probably a slip.

Not checked, because the domain brief leaves it to the DPO: whether a competent authority's
sharing for a given purpose is law enforcement (Part 3) or wider safeguarding (UK GDPR); brief
section 2.2 calls that boundary "a legal question to confirm per ISA".
"""

from __future__ import annotations

from collections.abc import Iterator

from federation.errors import PolicyProblem
from federation.isa.codes import ART9_NEEDS, PUBLIC_AUTHORITY_BARRED, CodeKind, kind_of
from federation.isa.model import Isa, LawfulBasis

__all__ = ["legal_problems"]

Where = tuple[str | int, ...]

#: The kinds of code each key of a lawful basis accepts (criminal offence data may rely on a
#: Schedule 1 Part 1, 2 or 3 condition: DPA 2018 s10(5)).
_KEY_KINDS: dict[str, frozenset[CodeKind]] = {
    "article6": frozenset({"article6"}),
    "rli_condition": frozenset({"rli_condition"}),
    "part3_purpose": frozenset({"part3_purpose"}),
    "article9": frozenset({"article9"}),
    "sch1": frozenset({"sch1_part1", "sch1_part2"}),
    "sch8": frozenset({"sch8"}),
    "criminal_offence": frozenset({"sch1_part1", "sch1_part2", "sch1_part3"}),
}
_KIND_WORDS: dict[CodeKind, str] = {
    "article6": "an Art 6 basis (article6)",
    "article9": "an Art 9 condition (article9)",
    "sch1_part1": "a Schedule 1 Part 1 condition (sch1)",
    "sch1_part2": "a Schedule 1 Part 2 condition (sch1)",
    "sch1_part3": "a criminal offence condition (criminal_offence)",
    "sch8": "a Schedule 8 condition (sch8)",
    "part3_purpose": "a law-enforcement purpose (part3_purpose)",
    "rli_condition": "an Annex 1 condition (rli_condition)",
}
_PARA_36 = "sch1_p3_36_ext_p2"
_RLI = "a6_1_ea_recognised_legitimate_interest"


def _error(isa: Isa, where: Where, message: str) -> PolicyProblem:
    return PolicyProblem(isa.source, isa.line_of(*where), message)


def _warning(isa: Isa, where: Where, message: str) -> PolicyProblem:
    return PolicyProblem(isa.source, isa.line_of(*where), message, "warning")


def _coded(basis: LawfulBasis) -> Iterator[tuple[str, int | None, str]]:
    """(key, index or None for a single code, code) for every code in the basis."""
    for key in ("article6", "rli_condition", "part3_purpose"):
        code = getattr(basis, key)
        if code is not None:
            yield key, None, code
    for key in ("article9", "sch1", "sch8", "criminal_offence"):
        for index, code in enumerate(getattr(basis, key)):
            yield key, index, code


def _wrong_keys(isa: Isa, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """E12."""
    for key, index, code in _coded(basis):
        kind = kind_of(code)
        if kind is None or kind in _KEY_KINDS[key]:
            continue
        at = (*where, key) if index is None else (*where, key, index)
        yield _error(isa, at, f"{code!r} is {_KIND_WORDS[kind]}, not allowed under {key!r}")


def _kinds(codes: list[str]) -> set[CodeKind]:
    return {k for k in map(kind_of, codes) if k is not None}


def _art9_pairs(isa: Isa, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """E13."""
    sch1, kinds = set(basis.sch1), _kinds(basis.sch1)
    for index, code in enumerate(basis.article9):
        need = ART9_NEEDS.get(code)
        if need is None:
            continue
        met = need in kinds if isinstance(need, str) else bool(need & sch1)
        if not met:
            wanted = (
                "a Schedule 1 Part 2 condition"
                if isinstance(need, str)
                else " or ".join(sorted(need))
            )
            msg = f"Art 9 condition {code!r} needs {wanted} in sch1 (DPA 2018 s10)"
            yield _error(isa, (*where, "article9", index), msg)


def _para36(isa: Isa, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """E14."""
    if _PARA_36 not in basis.criminal_offence:
        return
    if "sch1_part2" in _kinds(basis.sch1) | _kinds(basis.criminal_offence):
        return
    index = basis.criminal_offence.index(_PARA_36)
    msg = f"{_PARA_36!r} extends Schedule 1 Part 2 conditions, but this basis cites none"
    yield _error(isa, (*where, "criminal_offence", index), msg)


def _part3(isa: Isa, agency: str, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """E15."""
    party = isa.party(agency)
    if (
        basis.regime == "dpa2018_part3"
        and party is not None
        and (not party.competent_authority_part3)
    ):
        msg = (
            f"{agency!r} is not a competent authority (competent_authority_part3), so "
            "it cannot process under DPA 2018 Part 3"
        )
        yield _error(isa, (*where, "regime"), msg)
    if basis.regime == "uk_gdpr" and basis.part3_purpose is not None:
        msg = (
            "a law-enforcement purpose (part3_purpose) is processing under DPA 2018 Part 3: "
            "use regime dpa2018_part3 with sch8 conditions"
        )
        yield _error(isa, (*where, "part3_purpose"), msg)


def _interests(isa: Isa, agency: str, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """E11 and E16."""
    party = isa.party(agency)
    if party is not None and party.public_authority and basis.article6 in PUBLIC_AUTHORITY_BARRED:
        msg = f"{agency!r} is a public authority and cannot rely on {basis.article6!r}"
        yield _error(isa, (*where, "article6"), msg)
    if basis.rli_condition is not None and basis.article6 != _RLI:
        msg = "rli_condition (an Annex 1 condition) applies only to Art 6(1)(ea)"
        yield _error(isa, (*where, "rli_condition"), msg)


def _orphans(isa: Isa, where: Where, basis: LawfulBasis) -> Iterator[PolicyProblem]:
    """W5."""
    points = set(basis.article9)
    for index, code in enumerate(basis.sch1):
        kind = kind_of(code)
        if kind == "sch1_part2" and ("a9_2_g" in points or _PARA_36 in basis.criminal_offence):
            continue
        if kind == "sch1_part1" and any(
            not isinstance(need, str) and code in need and point in points
            for point, need in ART9_NEEDS.items()
        ):
            continue
        if kind in ("sch1_part1", "sch1_part2"):
            msg = f"{code!r} is a condition for an Art 9(2) point this basis does not cite"
            yield _warning(isa, (*where, "sch1", index), msg)


def legal_problems(isa: Isa) -> list[PolicyProblem]:
    """Every pairing error (E11-E16) and warning (W5) in the ISA's lawful bases."""
    problems: list[PolicyProblem] = []
    for i, purpose in enumerate(isa.doc.purposes):
        for agency, basis in purpose.lawful_basis.items():
            where: Where = ("purposes", i, "lawful_basis", agency)
            problems += _wrong_keys(isa, where, basis)
            problems += _art9_pairs(isa, where, basis)
            problems += _para36(isa, where, basis)
            problems += _part3(isa, agency, where, basis)
            problems += _interests(isa, agency, where, basis)
            problems += _orphans(isa, where, basis)
    return problems
