"""Completeness: a warning for each element of the ICO Data Sharing Code an ISA leaves out.

This module performs no I/O. The elements are those of shared/domain/isa-and-referrals.md
section 1.6; the ones the engine enforces (parties, flows, fields, lawful basis, retention) are
checked as errors elsewhere, and the descriptive ones (:mod:`federation.isa.elements`) are
warned on here: an ISA written before they existed still loads and shares, but lint says what a
DPO would ask for.

Rules:
1. One warning per missing element per place: per party (contacts, DPO, ICO registration), per
   purpose (necessity, proportionality, benefits), per flow (trigger, frequency, channel), per
   party relying on a condition that needs an appropriate policy document, and once for each
   ISA-wide block. The message names the YAML key(s) to add.
2. A missing top-level block is reported at the line of the ``isa:`` header.
3. Errors here are references only: a sign-off, policy document, assessment or privacy notice
   for an agency that is not a party (E1).
"""

from __future__ import annotations

from collections.abc import Iterator

from federation.errors import PolicyProblem
from federation.isa.codes import NEEDS_APD, kind_of
from federation.isa.model import Isa, LawfulBasis

__all__ = ["completeness", "element_reference_errors"]

Where = tuple[str | int, ...]

#: ISA-wide blocks: (key, the §1.6 element in words).
_BLOCKS: tuple[tuple[str, str], ...] = (
    ("data_subject_groups", "the groups of people whose data is shared"),
    ("international_transfers", "whether data may leave the UK"),
    ("security", "the security measures"),
    ("data_quality", "data quality and standards"),
    ("individuals_rights", "how individuals' rights are handled, and the privacy notices"),
    ("breach", "what happens after a data breach"),
    ("non_compliance", "what happens when a party does not comply"),
    ("training", "the training practitioners need"),
    ("termination", "how the agreement ends and what happens to the data"),
)


def _warn(isa: Isa, where: Where, message: str) -> PolicyProblem:
    return PolicyProblem(isa.source, isa.line_of(*where), message, "warning")


def _missing(pairs: list[tuple[str, object]]) -> list[str]:
    return [key for key, value in pairs if value in (None, [], {})]


def _parties(isa: Isa) -> Iterator[PolicyProblem]:
    for i, party in enumerate(isa.doc.parties):
        keys = _missing(
            [
                ("contacts", party.contacts),
                ("dpo", party.dpo),
                ("ico_registration", party.ico_registration),
            ]
        )
        if keys:
            msg = f"party {party.id!r} does not give its {', '.join(keys)}"
            yield _warn(isa, ("parties", i), msg)


def _sign_off(isa: Isa) -> Iterator[PolicyProblem]:
    signed = {s.party for s in isa.doc.sign_off}
    unsigned = [p.id for p in isa.doc.parties if p.id not in signed]
    if unsigned:
        msg = f"no signatory declared (sign_off) for {', '.join(unsigned)}"
        yield _warn(isa, ("sign_off",) if isa.doc.sign_off else ("isa",), msg)


def _purposes(isa: Isa) -> Iterator[PolicyProblem]:
    for i, p in enumerate(isa.doc.purposes):
        keys = _missing(
            [
                ("necessity", p.necessity),
                ("proportionality", p.proportionality),
                ("benefits", p.benefits),
            ]
        )
        if keys:
            yield _warn(
                isa, ("purposes", i), f"purpose {p.id!r} does not state its {', '.join(keys)}"
            )


def _needs_apd(basis: LawfulBasis) -> bool:
    codes = [*basis.sch1, *basis.sch8, *basis.criminal_offence]
    return any(kind_of(code) in NEEDS_APD for code in codes)


def _first_basis(isa: Isa, agency: str) -> Where:
    for i, purpose in enumerate(isa.doc.purposes):
        if agency in purpose.lawful_basis:
            return ("purposes", i, "lawful_basis", agency)
    return ("parties",)


def _policy_documents(isa: Isa) -> Iterator[PolicyProblem]:
    docs = isa.doc.linked_documents
    held = docs.appropriate_policy_documents if docs is not None else {}
    needing = sorted(
        {a for p in isa.doc.purposes for a, b in p.lawful_basis.items() if _needs_apd(b)}
    )
    for agency in needing:
        if agency not in held:
            msg = (
                f"{agency!r} relies on a condition that needs an appropriate policy document "
                "(DPA 2018 Sch 1 para 5 / s42); add it under "
                "linked_documents.appropriate_policy_documents"
            )
            yield _warn(isa, _first_basis(isa, agency), msg)


def _bases(isa: Isa) -> Iterator[PolicyProblem]:
    docs = isa.doc.linked_documents
    lias = docs.legitimate_interests_assessments if docs is not None else {}
    for i, purpose in enumerate(isa.doc.purposes):
        for agency, basis in purpose.lawful_basis.items():
            where = ("purposes", i, "lawful_basis", agency)
            if basis.regime == "dpa2018_part3" and basis.part3_purpose is None:
                msg = (
                    f"{agency!r} processes under Part 3 but does not name its law-enforcement "
                    "purpose (part3_purpose)"
                )
                yield _warn(isa, (*where, "regime"), msg)
            if basis.article6 == "a6_1_ea_recognised_legitimate_interest" and (
                basis.rli_condition is None
            ):
                msg = (
                    f"{agency!r} relies on Art 6(1)(ea) but does not name its Annex 1 "
                    "condition (rli_condition)"
                )
                yield _warn(isa, (*where, "article6"), msg)
            if basis.article6 == "a6_1_f_legitimate_interests" and agency not in lias:
                msg = (
                    f"{agency!r} relies on Art 6(1)(f) without a legitimate interests "
                    "assessment (linked_documents.legitimate_interests_assessments)"
                )
                yield _warn(isa, (*where, "article6"), msg)


def _consent(isa: Isa) -> Iterator[PolicyProblem]:
    model = isa.doc.consent_model
    keys = _missing(
        [
            ("person_told", model.person_told),
            ("common_law_confidentiality", model.common_law_confidentiality),
        ]
    )
    if keys:
        yield _warn(isa, ("consent_model",), f"consent_model does not say {', '.join(keys)}")


def _flows(isa: Isa) -> Iterator[PolicyProblem]:
    for i, flow in enumerate(isa.doc.flows):
        keys = _missing(
            [("trigger", flow.trigger), ("frequency", flow.frequency), ("channel", flow.channel)]
        )
        if keys:
            yield _warn(isa, ("flows", i), f"flow {flow.id!r} does not give its {', '.join(keys)}")


def _documents(isa: Isa) -> Iterator[PolicyProblem]:
    docs = isa.doc.linked_documents
    if docs is None or docs.dpia is None:
        yield _warn(
            isa,
            ("linked_documents",) if docs else ("isa",),
            "no DPIA reference (linked_documents.dpia)",
        )
    if not isa.doc.isa.review.triggers:
        yield _warn(
            isa,
            ("isa", "review"),
            "review does not list what triggers an early review (review.triggers)",
        )


def _blocks(isa: Isa) -> Iterator[PolicyProblem]:
    doc = isa.doc
    for key, words in _BLOCKS:
        if getattr(doc, key) in (None, []):
            yield _warn(isa, ("isa",), f"the agreement does not say {words} ({key})")
    rights = doc.individuals_rights
    if rights is not None:
        missing = [p.id for p in doc.parties if p.id not in rights.privacy_notices]
        if missing:
            msg = f"no privacy notice for {', '.join(missing)} (individuals_rights.privacy_notices)"
            yield _warn(isa, ("individuals_rights",), msg)


def completeness(isa: Isa) -> list[PolicyProblem]:
    """One warning for each section 1.6 element missing from the ISA."""
    checks = (
        _parties,
        _sign_off,
        _purposes,
        _bases,
        _policy_documents,
        _consent,
        _flows,
        _documents,
        _blocks,
    )
    return [problem for check in checks for problem in check(isa)]


def _refs(isa: Isa) -> Iterator[tuple[Where, str]]:
    for i, sign in enumerate(isa.doc.sign_off):
        yield ("sign_off", i, "party"), sign.party
    docs = isa.doc.linked_documents
    if docs is not None:
        for key in ("appropriate_policy_documents", "legitimate_interests_assessments"):
            for agency in getattr(docs, key):
                yield ("linked_documents", key, agency), agency
    if isa.doc.individuals_rights is not None:
        for agency in isa.doc.individuals_rights.privacy_notices:
            yield ("individuals_rights", "privacy_notices", agency), agency


def element_reference_errors(isa: Isa) -> list[PolicyProblem]:
    """E1 for the descriptive blocks: every agency they name must be a party."""
    parties: set[str] = {p.id for p in isa.doc.parties}
    return [
        PolicyProblem(
            isa.source, isa.line_of(*where), f"unknown agency {agency!r}: not a party to this ISA"
        )
        for where, agency in _refs(isa)
        if agency not in parties
    ]
