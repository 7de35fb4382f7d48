"""The ICO code's descriptive elements of an ISA, in plain English, for ``policy explain``.

This module performs no I/O.

Rules:
1. Say what the agreement records (what the person is told, the common-law duty, the DPIA and
   policy documents, transfers, security, data quality, rights, breach, non-compliance,
   training, termination), in words, agencies by name.
2. Then name every element it does not record, so a practitioner never reads silence as "none".
"""

from __future__ import annotations

from collections.abc import Iterator

from federation.isa.elements import Termination
from federation.isa.model import Isa
from federation.isa.rendering import Node, Section
from federation.isa.wording import period

__all__ = ["element_sections"]

_GROUPS = {
    "victim": "victims",
    "perpetrator": "perpetrators",
    "child": "children",
    "household_member": "other members of the household",
    "third_party": "other people named",
    "practitioner": "practitioners",
}
_CONFIDENCE = {
    "consent": "the person's consent",
    "overriding_public_interest": "an overriding public interest",
    "legal_requirement": "a legal requirement",
}
_ACTIONS = {
    "suspend_party": "the party is suspended",
    "suspend_flow": "the flow is suspended",
    "escalate_to_signatories": "the signatories are told",
}
_RECEIVED = {
    "delete": "each party deletes what it received",
    "return": "each party returns what it received",
    "keep_under_own_retention": "each party keeps what it received under its own retention rules",
}


def _name(isa: Isa, agency: str) -> str:
    party = isa.party(agency)
    return party.name if party is not None else agency


def _per_party(isa: Isa, label: str, refs: dict[str, str]) -> Node:
    return Node(label, tuple(Node(f"{_name(isa, a)}: {ref}") for a, ref in refs.items()))


def _people(isa: Isa) -> Iterator[Node]:
    doc = isa.doc
    if doc.data_subject_groups:
        yield Node("Whose information: " + ", ".join(_GROUPS[g] for g in doc.data_subject_groups))
    if doc.consent_model.person_told:
        yield Node(f"What the person is told: {doc.consent_model.person_told}")
    duty = doc.consent_model.common_law_confidentiality
    if duty is not None:
        how = " or ".join(_CONFIDENCE[b] for b in duty.basis)
        yield Node(
            f"The common-law duty of confidence is met by {how}"
            + (f" ({duty.note})" if duty.note else "")
            + "."
        )


def _documents(isa: Isa) -> Iterator[Node]:
    docs = isa.doc.linked_documents
    if docs is None:
        return
    if docs.dpia is not None:
        extra = [
            x
            for x in (
                docs.dpia.outcome,
                docs.dpia.completed_on and docs.dpia.completed_on.isoformat(),
            )
            if x
        ]
        yield Node(
            f"Data protection impact assessment: {docs.dpia.ref}"
            + (f" ({', '.join(extra)})" if extra else "")
        )
    if docs.appropriate_policy_documents:
        yield _per_party(isa, "Appropriate policy documents:", docs.appropriate_policy_documents)
    if docs.legitimate_interests_assessments:
        yield _per_party(
            isa, "Legitimate interests assessments:", docs.legitimate_interests_assessments
        )
    if docs.operating_protocol:
        yield Node(f"Operating protocol: {docs.operating_protocol}")


def _safeguards(isa: Isa) -> Iterator[Node]:
    doc = isa.doc
    transfers = doc.international_transfers
    if transfers is not None and not transfers.permitted:
        yield Node("Nothing is sent outside the UK.")
    elif transfers is not None:
        yield Node(
            f"May be sent to {', '.join(transfers.destinations)}, under {transfers.safeguards}."
        )
    if doc.security is not None:
        s = doc.security
        parts = [
            f"marked {s.min_marking}" if s.min_marking else "",
            s.transport or "",
            s.at_rest or "",
            s.access or "",
            *s.assurance,
        ]
        yield Node("Security: " + "; ".join(p for p in parts if p) + ".")
    if doc.data_quality is not None:
        q = doc.data_quality
        parts = [*q.standards, q.accuracy_checks or ""]
        if q.fact_and_opinion_marked:
            parts.append("facts and opinions are marked apart")
        yield Node("Data quality: " + "; ".join(p for p in parts if p) + ".")


def _rights(isa: Isa) -> Iterator[Node]:
    rights = isa.doc.individuals_rights
    if rights is None:
        return
    details = [
        Node(f"{label}: {text}")
        for label, text in (
            ("Subject access", rights.subject_access),
            ("Corrections", rights.rectification),
            ("Objections", rights.objection),
            ("Complaints", rights.complaints),
        )
        if text
    ]
    if rights.privacy_notices:
        details.append(_per_party(isa, "Privacy notices:", rights.privacy_notices))
    if rights.transparency_exemptions:
        details.append(Node("Exemptions considered: " + "; ".join(rights.transparency_exemptions)))
    yield Node(
        f"People's rights (access, correction, objection, complaints): contact {rights.contact}",
        tuple(details),
    )


def _breach(isa: Isa) -> Iterator[Node]:
    doc = isa.doc
    if doc.breach is not None:
        b = doc.breach
        steps = [Node(f"the sender is told within {period(b.notify_originator_within)}")]
        if b.notify_ico_within:
            steps.append(Node(f"the ICO is told within {period(b.notify_ico_within)}"))
        if b.notify_subjects:
            steps.append(Node(f"the people affected: {b.notify_subjects}"))
        yield Node("After a data breach:", tuple(steps))
    if doc.non_compliance is not None:
        n = doc.non_compliance
        text = "If a party does not comply: " + "; ".join(_ACTIONS[a] for a in n.actions)
        yield Node(text + (f"; staff: {n.staff_sanctions}" if n.staff_sanctions else "") + ".")
    if doc.training is not None:
        t = doc.training
        extra = f", refreshed every {period(t.refresh)}" if t.refresh else ""
        yield Node(
            f"Training: {t.requirement}{extra}"
            + (f" (guidance: {t.guidance})" if t.guidance else "")
            + "."
        )
    if doc.termination is not None:
        yield _termination(doc.termination)


def _termination(t: Termination) -> Node:
    text = "Ending the agreement: "
    text += f"{period(t.notice)} notice; " if t.notice else ""
    text += _RECEIVED[t.received_data]
    text += f"; evidence: {t.evidence}" if t.evidence else ""
    text += f"; {t.procedure}" if t.procedure else ""
    return Node(text + ".")


_ELEMENTS: tuple[tuple[str, str], ...] = (
    ("data_subject_groups", "whose information is shared"),
    ("sign_off", "who signed it off"),
    ("linked_documents", "the DPIA and policy documents"),
    ("international_transfers", "whether data may leave the UK"),
    ("security", "security measures"),
    ("data_quality", "data quality"),
    ("individuals_rights", "how people's rights are handled"),
    ("breach", "what happens after a data breach"),
    ("non_compliance", "what happens if a party does not comply"),
    ("training", "training"),
    ("termination", "how the agreement ends"),
)


def _missing(isa: Isa) -> list[str]:
    doc = isa.doc
    missing = [words for key, words in _ELEMENTS if getattr(doc, key) in (None, [])]
    if doc.consent_model.person_told is None:
        missing.insert(0, "what the person is told")
    if doc.consent_model.common_law_confidentiality is None:
        missing.insert(1, "how the common-law duty of confidence is met")
    return missing


def element_sections(isa: Isa) -> list[Section]:
    """What the agreement records about the ICO code's other elements, and what it does not."""
    items = (*_people(isa), *_documents(isa), *_safeguards(isa), *_rights(isa), *_breach(isa))
    missing = _missing(isa)
    paragraphs = (f"Not recorded in this agreement: {'; '.join(missing)}.",) if missing else ()
    return [Section("How the agreement is kept", paragraphs, tuple(items), key=("elements",))]
