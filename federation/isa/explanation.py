"""A plain-English, jargon-free summary of an ISA that a practitioner can read.

This module performs no I/O.

Rules:
1. Say who shares what with whom, why, on what legal footing (codes translated into words), at
   each risk level, what is never shared and what the recipient must not do.
2. Field paths are shown as readable phrases (``victim.date_of_birth`` -> "victim: date of
   birth"); legal codes not in the glossary are shown as they are, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from federation.isa.codes import CODE_WORDS
from federation.isa.model import RISK_LEVELS, Flow, Isa, LawfulBasis
from federation.isa.plan import labels_for, never_share_paths, plan_for

__all__ = ["CODE_WORDS", "explain", "phrase"]


_SINGULAR = {"children": "child", "perpetrators": "perpetrator", "other_subjects": "other person",
             "other_professionals": "other professional"}
_UNITS = {"Y": "year", "M": "month", "W": "week", "D": "day"}
_START_WORDS = {"received": "it is received", "case_closed": "the case is closed",
                "last_activity": "the last activity on the case"}
_TRANSFORM_WORDS = {
    "age_band": "as an age range only",
    "postcode_district": "as the first part of the postcode only",
    "year": "as the year only",
}
_DECISION_WORDS = {
    "permit": "may be shared",
    "review": "may be shared once a supervisor has reviewed it",
    "deny": "nothing is shared",
}
_CONSENT_WORDS = {
    "not_required": "the victim's agreement is not required",
    "agreement_given": "only with the victim's recorded agreement",
    "agreement_or_reason_recorded": (
        "with the victim's agreement, or without it if the reason is recorded"
    ),
}


def phrase(path: str) -> str:
    """``children[].date_of_birth`` -> ``each child: date of birth``."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        head = "each " + _SINGULAR.get(head[:-2], head[:-2])
    rest = rest.replace("[].", " / ").replace(".", " / ").replace("_", " ")
    return f"{head.replace('_', ' ')}: {rest}" if rest else head.replace("_", " ")


def _describe(path: str, description: str) -> str:
    """A field as a practitioner would say it: whose it is, then what it is."""
    if not description:
        return phrase(path)
    head = phrase(path.split(".", 1)[0]) if "." in path else ""
    return f"{head}: {description}" if head and head != "dash" else description


def _period(duration: str) -> str:
    """``P2Y`` -> ``2 years``; ``P1Y6M`` -> ``1 year 6 months``."""
    parts = re.findall(r"(\d+)([YMWD])", duration)
    return " ".join(f"{n} {_UNITS[u]}{'' if n == '1' else 's'}" for n, u in parts)


def _words(code: str) -> str:
    return CODE_WORDS.get(code, code)


def _basis_text(name: str, basis: LawfulBasis) -> str:
    if basis.regime == "dpa2018_part3":
        parts = [f"{name} acts as a law-enforcement body (Data Protection Act 2018 Part 3)"]
        if basis.sch8:
            parts.append("sensitive details for " + ", ".join(_words(c) for c in basis.sch8))
    else:
        parts = [f"{name} relies on {_words(basis.article6 or '')}"]
        if basis.article9 or basis.sch1:
            codes = [*basis.article9, *basis.sch1]
            parts.append("sensitive details for " + ", ".join(_words(c) for c in codes))
    if basis.legal_gateways:
        parts.append("under " + "; ".join(basis.legal_gateways))
    return "; ".join(parts) + "."


def _level_lines(isa: Isa, flow: Flow, message_type: str) -> Iterator[str]:
    consent = isa.consent_for(flow)
    before: frozenset[str] = frozenset()
    for level in RISK_LEVELS:
        rule = flow.by_risk_level.rule(level)
        decision = rule.decision if rule else "deny"
        yield f"  At {level} risk: {_DECISION_WORDS[decision]}."
        if decision == "deny":
            continue
        yield f"    Consent: {_CONSENT_WORDS[getattr(consent, level).requires]}."
        plan = plan_for(isa, flow, message_type, level, flow.sender[0])
        new = sorted(plan.released - before)
        if before:
            yield "    Everything shared at the level below, and also:"
        for path in new:
            extra = _TRANSFORM_WORDS.get(plan.transforms.get(path, ""), "")
            text = _describe(path, plan.labels[path].description)
            yield f"    - {text}{' (' + extra + ')' if extra else ''}"
        before = plan.released


def _duties(flow: Flow) -> Iterator[str]:
    ob = flow.obligations
    if ob.must_not_inform:
        yield "must not tell the " + " or ".join(ob.must_not_inform.who) + " about this"
    if ob.no_onward_disclosure:
        yield "must not pass it on without the sender's agreement"
    if ob.retain:
        yield f"must delete it {_period(ob.retain.period)} after {_START_WORDS[ob.retain.start]}"
    if ob.notify_originator:
        yield "must tell the sender about: " + ", ".join(ob.notify_originator).replace("_", " ")


def _flow_lines(isa: Isa, flow: Flow) -> Iterator[str]:
    purpose = isa.purpose(flow.purpose)
    senders, recipients = " or ".join(flow.sender), " or ".join(flow.to)
    yield ""
    yield f"{senders} may send to {recipients} ({', '.join(flow.message_types)})."
    if purpose is not None:
        yield f"  Why: {purpose.description}"
        for agency in (*flow.sender, *flow.to):
            party = isa.party(agency)
            if agency in purpose.lawful_basis and party is not None:
                yield "  Legal basis: " + _basis_text(party.name, purpose.lawful_basis[agency])
    for message_type in flow.message_types:
        yield from _level_lines(isa, flow, message_type)
    duties = list(_duties(flow))
    if duties:
        yield f"  {recipients}:"
        yield from (f"    - {d}" for d in duties)


def _one_way(isa: Isa) -> Iterator[str]:
    pairs = {(s, r) for f in isa.doc.flows for s in f.sender for r in f.to}
    for sender, recipient in sorted(pairs):
        if (recipient, sender) not in pairs:
            yield f"Nothing is sent back from {recipient} to {sender} under this agreement."


def explain(isa: Isa) -> str:
    """The whole ISA in plain English."""
    header = isa.doc.isa
    lines = [f"{header.title}", f"Agreement {header.id}, version {header.version}, {header.status}"]
    to = header.effective_to.isoformat() if header.effective_to else "until ended"
    lines.append(f"In force from {header.effective_from.isoformat()} to {to}; "
                 f"next review {header.review.next_review.isoformat()}.")
    lines.append("Who takes part: " + "; ".join(f"{p.name} ({p.id})" for p in isa.doc.parties))
    for flow in isa.doc.flows:
        lines.extend(_flow_lines(isa, flow))
    never: set[str] = set()
    for flow in isa.doc.flows:
        for mt in flow.message_types:
            never |= never_share_paths(isa, labels_for(isa, mt) or {})
    lines.append("")
    lines.extend(_one_way(isa))
    lines.append("Never shared, whatever the risk:")
    lines.extend(f"  - {phrase(p)}" for p in sorted(never))
    if not never:
        lines.append("  (nothing extra: only what is listed above is shared)")
    lines.append("Anything not listed above is not shared.")
    return "\n".join(lines) + "\n"
