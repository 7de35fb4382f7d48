"""Lint for ISAs: every check in DESIGN, each an error or a warning at ``file:line``.

This module performs no I/O and reads no clock (``today`` is an argument).

Errors (an ISA with any of them does not load):
  E1 unknown agency (a flow's from/to not a party; a party not in ``known_agencies``; a lawful
     basis, sign-off, policy document or privacy notice for a non-party); E2 duplicate ids
     (parties, purposes, flows; ISA ids across files); E3 unknown references (purpose, field
     set, message type); E4 unknown field paths (a pattern matching nothing in the catalogue);
     E5 a party in a flow without a lawful basis for its purpose; E6 a field released at a lower
     risk level but not at a higher one; E7 special category fields without Art 9 + Schedule 1
     (or Schedule 8 under Part 3); E8 criminal-offence fields without a condition; E9 a
     ``never_share`` field named in an allow list; E10 a transform on a field it does not apply
     to.
  E11-E16 the legal pairings of each lawful basis (:mod:`federation.isa.legal`): Art 6(1)(ea)/(f)
     for a public authority; a code under the wrong key; an Art 9 point without its Schedule 1
     condition; para 36 without a Part 2 condition; Part 3 outside a competent authority; an
     Annex 1 condition without Art 6(1)(ea).
Warnings: W1 expired; W2 overdue for review; W3 not active; W4 a legal code not in
  :data:`federation.isa.codes.CODE_WORDS` (probably a typo); W5 a Schedule 1 condition whose
  Art 9 point is not cited; and one warning per element of the ICO code the ISA leaves out
  (:func:`federation.isa.completeness.completeness`).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator
from datetime import date

from federation.errors import PolicyProblem
from federation.isa.catalogue import is_pattern, match_paths
from federation.isa.codes import CODE_WORDS
from federation.isa.completeness import completeness, element_reference_errors
from federation.isa.legal import legal_problems
from federation.isa.model import RISK_LEVELS, Flow, Isa
from federation.isa.plan import allow_patterns, expand, labels_for, never_share_paths

__all__ = ["check_errors", "completeness", "duplicate_isa_ids", "lint"]

_ALWAYS = frozenset({"keep", "drop"})


def _problem(isa: Isa, path: tuple[str | int, ...], message: str) -> PolicyProblem:
    return PolicyProblem(isa.source, isa.line_of(*path), message)


def _duplicates(ids: Iterable[str]) -> Iterator[tuple[int, str]]:
    seen: set[str] = set()
    for index, ident in enumerate(ids):
        if ident in seen:
            yield index, ident
        seen.add(ident)


def _check_ids(isa: Isa, known: Collection[str] | None) -> Iterator[PolicyProblem]:
    doc = isa.doc
    for index, pid in _duplicates(p.id for p in doc.parties):
        yield _problem(isa, ("parties", index, "id"), f"duplicate party id {pid!r}")
    for index, pid in _duplicates(p.id for p in doc.purposes):
        yield _problem(isa, ("purposes", index, "id"), f"duplicate purpose id {pid!r}")
    for index, fid in _duplicates(f.id for f in doc.flows):
        yield _problem(isa, ("flows", index, "id"), f"duplicate flow id {fid!r}")
    for index, party in enumerate(doc.parties):
        if known is not None and party.id not in known:
            yield _problem(isa, ("parties", index, "id"), f"unknown agency {party.id!r}")
    parties = {p.id for p in doc.parties}
    for index, purpose in enumerate(doc.purposes):
        for agency in purpose.lawful_basis:
            if agency not in parties:
                where = ("purposes", index, "lawful_basis", agency)
                yield _problem(isa, where, f"unknown agency {agency!r}: not a party to this ISA")


def _flow_paths(isa: Isa, flow: Flow) -> set[str]:
    paths: set[str] = set()
    for mt in flow.message_types:
        paths.update(labels_for(isa, mt) or {})
    return paths


def _check_patterns(
    isa: Isa, where: tuple[str | int, ...], patterns: Iterable[str], paths: set[str]
) -> Iterator[PolicyProblem]:
    for index, pattern in enumerate(patterns):
        if not match_paths(pattern, paths):
            yield _problem(isa, (*where, index), f"unknown field path {pattern!r}")


def _check_flow_refs(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    parties = {p.id for p in isa.doc.parties}
    for key, agencies in (("from", flow.sender), ("to", flow.to)):
        for j, agency in enumerate(agencies):
            if agency not in parties:
                msg = f"unknown agency {agency!r}: not a party to this ISA"
                yield _problem(isa, ("flows", i, key, j), msg)
    purpose = isa.purpose(flow.purpose)
    if purpose is None:
        yield _problem(isa, ("flows", i, "purpose"), f"unknown purpose {flow.purpose!r}")
    else:
        for agency in sorted(set(flow.sender) | set(flow.to)):
            if agency in parties and agency not in purpose.lawful_basis:
                msg = f"party {agency!r} has no lawful basis for purpose {flow.purpose!r}"
                yield _problem(isa, ("flows", i, "purpose"), msg)
    for j, mt in enumerate(flow.message_types):
        if labels_for(isa, mt) is None:
            yield _problem(isa, ("flows", i, "message_types", j), f"unknown message type {mt!r}")


def _check_flow_fields(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    paths = _flow_paths(isa, flow)
    yield from _check_patterns(isa, ("flows", i, "deny_fields"), flow.deny_fields, paths)
    for level in RISK_LEVELS:
        rule = flow.by_risk_level.rule(level)
        if rule is None:
            continue
        base = ("flows", i, "by_risk_level", level)
        for j, name in enumerate(rule.field_sets):
            if name not in isa.doc.field_sets:
                yield _problem(isa, (*base, "field_sets", j), f"unknown field set {name!r}")
        yield from _check_patterns(isa, (*base, "fields"), rule.fields, paths)


def _transform_sources(i: int, flow: Flow) -> list[tuple[tuple[str | int, ...], dict[str, str]]]:
    sources: list[tuple[tuple[str | int, ...], dict[str, str]]] = [
        (("flows", i, "transforms"), dict(flow.transforms))
    ]
    for level in RISK_LEVELS:
        rule = flow.by_risk_level.rule(level)
        if rule is not None:
            where = ("flows", i, "by_risk_level", level, "transforms")
            sources.append((where, dict(rule.transforms)))
    return sources


def _check_transforms(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    catalogues = [labels_for(isa, mt) or {} for mt in flow.message_types]
    for where, transforms in _transform_sources(i, flow):
        for pattern, transform in transforms.items():
            hits = [(lab, p) for lab in catalogues for p in match_paths(pattern, lab)]
            if not hits:
                yield _problem(isa, (*where, pattern), f"unknown field path {pattern!r}")
            bad = [p for lab, p in hits if transform not in lab[p].transforms | _ALWAYS]
            if bad:
                msg = f"transform {transform!r} does not apply to field {bad[0]!r}"
                yield _problem(isa, (*where, pattern), msg)


def _released(isa: Isa, flow: Flow, mt: str) -> dict[str, set[str]]:
    labels = labels_for(isa, mt) or {}
    blocked = never_share_paths(isa, labels) | expand(flow.deny_fields, labels)
    return {
        level: expand(allow_patterns(isa, flow.by_risk_level.rule(level)), labels) - blocked
        for level in RISK_LEVELS
    }


def _check_monotone(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    for mt in flow.message_types:
        released = _released(isa, flow, mt)
        for lower, higher in itertools.pairwise(RISK_LEVELS):
            for path in sorted(released[lower] - released[higher]):
                msg = (
                    f"flow {flow.id!r}: field {path!r} is released at {lower} risk "
                    f"but not at {higher} risk"
                )
                yield _problem(isa, ("flows", i, "by_risk_level", higher), msg)


def _check_never_share_allowed(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    for mt in flow.message_types:
        never = never_share_paths(isa, labels_for(isa, mt) or {})
        for level in RISK_LEVELS:
            rule = flow.by_risk_level.rule(level)
            if rule is None:
                continue
            named: list[tuple[tuple[str | int, ...], str]]
            named = [(("fields", j), f) for j, f in enumerate(rule.fields)]
            for name in rule.field_sets:
                named += [((), f) for f in isa.doc.field_sets.get(name, [])]
            for sub, pattern in named:
                if not is_pattern(pattern) and pattern in never:
                    where = ("flows", i, "by_risk_level", level, *sub)
                    msg = f"never_share field {pattern!r} is in the allow list at {level} risk"
                    yield _problem(isa, where, msg)


def _check_conditions(isa: Isa, i: int, flow: Flow) -> Iterator[PolicyProblem]:
    purpose = isa.purpose(flow.purpose)
    if purpose is None:
        return
    for mt in flow.message_types:
        labels = labels_for(isa, mt) or {}
        released = set().union(*_released(isa, flow, mt).values())
        sc = sorted(p for p in released if labels[p].special_category)
        cod = sorted(p for p in released if labels[p].criminal_offence)
        for agency in sorted(set(flow.sender) | set(flow.to)):
            basis = purpose.lawful_basis.get(agency)
            if basis is None:
                continue
            where = ("purposes", isa.doc.purposes.index(purpose), "lawful_basis", agency)
            if sc and not basis.special_category_condition():
                msg = (
                    f"flow {flow.id!r} releases special category field {sc[0]!r} but "
                    f"{agency!r} has no Art 9 + Schedule 1 (or Schedule 8) condition"
                )
                yield _problem(isa, where, msg)
            if cod and not basis.criminal_offence_condition():
                msg = (
                    f"flow {flow.id!r} releases criminal offence field {cod[0]!r} but "
                    f"{agency!r} has no criminal offence condition"
                )
                yield _problem(isa, where, msg)


def _unknown_codes(isa: Isa) -> Iterator[PolicyProblem]:
    """W4: codes the glossary does not know."""
    for i, purpose in enumerate(isa.doc.purposes):
        for agency, basis in purpose.lawful_basis.items():
            where = ("purposes", i, "lawful_basis", agency)
            singles = {"article6": basis.article6, "part3_purpose": basis.part3_purpose,
                       "rli_condition": basis.rli_condition}
            for key, code in singles.items():
                if code is not None and code not in CODE_WORDS:
                    msg = f"unknown legal code {code!r}"
                    yield PolicyProblem(isa.source, isa.line_of(*where, key), msg, "warning")
            for key in ("article9", "sch1", "sch8", "criminal_offence"):
                for j, code in enumerate(getattr(basis, key)):
                    if code not in CODE_WORDS:
                        msg = f"unknown legal code {code!r}"
                        line = isa.line_of(*where, key, j)
                        yield PolicyProblem(isa.source, line, msg, "warning")


def _check_field_sets(isa: Isa) -> Iterator[PolicyProblem]:
    paths: set[str] = set()
    for flow in isa.doc.flows:
        paths |= _flow_paths(isa, flow)
    for name, patterns in isa.doc.field_sets.items():
        yield from _check_patterns(isa, ("field_sets", name), patterns, paths)
    yield from _check_patterns(isa, ("never_share",), isa.doc.never_share, paths)


def check_errors(isa: Isa, *, known_agencies: Collection[str] | None = None) -> list[PolicyProblem]:
    """Every lint error (E1-E16) in one loaded ISA, in file order."""
    problems = list(_check_ids(isa, known_agencies))
    for i, flow in enumerate(isa.doc.flows):
        problems += _check_flow_refs(isa, i, flow)
        problems += _check_flow_fields(isa, i, flow)
        problems += _check_transforms(isa, i, flow)
        problems += _check_never_share_allowed(isa, i, flow)
        problems += _check_monotone(isa, i, flow)
        problems += _check_conditions(isa, i, flow)
    problems += _check_field_sets(isa)
    problems += element_reference_errors(isa)
    problems += [p for p in legal_problems(isa) if p.severity == "error"]
    return sorted(set(problems), key=lambda p: (p.line, p.message))


def _warnings(isa: Isa, today: date) -> Iterator[PolicyProblem]:
    header = isa.doc.isa
    if header.effective_to is not None and header.effective_to < today:
        msg = f"ISA {header.id!r} expired on {header.effective_to.isoformat()}"
        yield PolicyProblem(isa.source, isa.line_of("isa", "effective_to"), msg, "warning")
    if header.review.next_review < today:
        msg = f"ISA {header.id!r} is overdue for review (due {header.review.next_review})"
        yield PolicyProblem(isa.source, isa.line_of("isa", "review", "next_review"), msg, "warning")
    if header.status != "active":
        msg = f"ISA {header.id!r} has status {header.status!r}: nothing can be shared under it"
        yield PolicyProblem(isa.source, isa.line_of("isa", "status"), msg, "warning")


def lint(
    isa: Isa, *, today: date, known_agencies: Collection[str] | None = None
) -> list[PolicyProblem]:
    """Every error and warning in one ISA (the completeness warnings last)."""
    legal_warnings = [p for p in legal_problems(isa) if p.severity != "error"]
    warnings = [*_warnings(isa, today), *_unknown_codes(isa), *legal_warnings,
                *completeness(isa)]
    return check_errors(isa, known_agencies=known_agencies) + warnings


def duplicate_isa_ids(isas: Iterable[Isa]) -> list[PolicyProblem]:
    """E2 across files: the second and later files using an ISA id already seen."""
    seen: dict[str, Isa] = {}
    problems = []
    for isa in isas:
        first = seen.setdefault(isa.id, isa)
        if first is not isa:
            msg = f"duplicate ISA id {isa.id!r} (also in {first.source})"
            problems.append(PolicyProblem(isa.source, isa.line_of("isa", "id"), msg))
    return problems
