"""A plain-English, jargon-free explanation of an ISA that a practitioner can trust.

This module performs no I/O.

Rules:
1. It says everything the evaluator applies (:mod:`federation.isa.evaluation`): when the
   agreement is in force; who may send what to whom and why; each party's legal footing (Art 6,
   the recognised-legitimate-interest condition, the law-enforcement purpose, the special
   category and criminal-offence conditions, the legal powers); at each risk level the decision,
   the practice-consent rule and what happens when it is not met, and the fields released for
   EVERY sender (senders whose releases are identical share one list); the fields a flow never
   passes on; everything never shared; and every duty on the recipient (retention, no onward
   disclosure, must not inform, notify the sender, s62 logging, and the fields' own handling
   labels). A test walks the model and the evaluator's plans to prove nothing is left out.
2. Agencies by name, fields by their catalogue labels in form order, legal codes as words with
   their citation (:mod:`federation.isa.wording`); an id or code appears only where the
   glossary has no words for it.
3. It also says what the agreement records about the ICO code's other elements, and names the
   ones it does not record.
4. The document is rendered as text (:func:`explain`) or as one HTML page
   (:func:`explain_html`) from one :class:`~federation.isa.rendering.Explanation`.
"""

from __future__ import annotations

from collections.abc import Iterator

from federation.isa.explanation_elements import element_sections
from federation.isa.model import RISK_LEVELS, Flow, Isa, LawfulBasis, Party, RiskLevel
from federation.isa.plan import LevelPlan, expand, labels_for, never_share_paths, plan_for
from federation.isa.rendering import Explanation, Node, Section, render_html, render_text
from federation.isa.wording import (
    CONSENT_WORDS,
    DECISION_WORDS,
    EVENTS_WORDS,
    OTHERWISE_WORDS,
    REVIEW_TRIGGERS_WORDS,
    START_WORDS,
    STATUS_WORDS,
    TRANSFORM_WORDS,
    TRIGGERS_WORDS,
    WHO_WORDS,
    code_words,
    field_lines,
    message_type_words,
    period,
)

__all__ = ["explain", "explain_html", "explanation"]


def _names(isa: Isa, agencies: list[str]) -> str:
    names = [p.name if (p := isa.party(a)) is not None else a for a in agencies]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _about(isa: Isa) -> Section:
    header = isa.doc.isa
    end = header.effective_to.isoformat() if header.effective_to else "until it is ended"
    review = header.review
    review_items = [Node(f"reviewed every {period(review.interval)}")] if review.interval else []
    if review.triggers:
        words = ", ".join(REVIEW_TRIGGERS_WORDS[t] for t in review.triggers)
        review_items.append(Node(f"reviewed early after {words}"))
    items = [
        Node(f"Agreement {header.id}, version {header.version}: {STATUS_WORDS[header.status]}."),
        Node(
            f"In force from {header.effective_from.isoformat()} to {end}; nothing is shared "
            "outside these dates."
        ),
        Node(
            f"Next review due {review.next_review.isoformat()}.",
            tuple(review_items),
            key=("review",),
        ),
        _sign_off(isa),
    ]
    if header.synthetic:
        items.append(Node("This is a SYNTHETIC example for testing, not a real agreement."))
    return Section("About this agreement", items=tuple(items), key=("about",))


def _sign_off(isa: Isa) -> Node:
    if not isa.doc.sign_off:
        return Node("No signatories are recorded in this agreement.")
    rows = [
        Node(
            f"{s.name}, {s.role.replace('_', ' ')}, for {_names(isa, [s.party])}"
            + (f", on {s.signed_on.isoformat()}" if s.signed_on else "")
        )
        for s in isa.doc.sign_off
    ]
    return Node("Signed off by:", tuple(rows))


def _party(party: Party) -> Node:
    kinds = [party.sector.replace("_", " ")]
    kinds.append("a public authority" if party.public_authority else "not a public authority")
    if party.competent_authority_part3:
        kinds.append("a law-enforcement body (competent authority, DPA 2018 Part 3)")
    if party.controller_role != "independent":
        kinds.append(f"{party.controller_role} controller")
    details = [Node(f"contact: {c.role}, {c.email or c.phone}") for c in party.contacts]
    if party.dpo is not None:
        details.append(Node(f"data protection officer: {party.dpo.email or party.dpo.phone}"))
    if party.ico_registration:
        details.append(Node(f"ICO registration: {party.ico_registration}"))
    return Node(f"{party.name} ({'; '.join(kinds)})", tuple(details), key=("party", party.id))


_NONE = "no condition recorded, so they are never sent by it."


def _conditions(basis: LawfulBasis) -> Iterator[Node]:
    if basis.regime == "dpa2018_part3":
        sensitive = [code_words(c) for c in basis.sch8]
        yield Node(
            "Sensitive details (health, sex life, ethnicity and the like), only when "
            "strictly necessary: " + ("; ".join(sensitive) if sensitive else _NONE)
        )
        yield Node("Criminal-offence details: covered by its law-enforcement processing.")
    else:
        sensitive = [code_words(c) for c in [*basis.article9, *basis.sch1]]
        offence = [code_words(c) for c in basis.criminal_offence]
        yield Node(
            "Special category details (health, sex life, ethnicity and the like): "
            + ("; ".join(sensitive) if sensitive else _NONE)
        )
        yield Node("Criminal-offence details: " + ("; ".join(offence) if offence else _NONE))
    if basis.legal_gateways:
        yield Node("Legal powers: " + "; ".join(basis.legal_gateways) + ".")


def _basis(isa: Isa, agency: str, basis: LawfulBasis) -> Node:
    name = _names(isa, [agency])
    if basis.regime == "dpa2018_part3":
        text = f"{name}: law enforcement under the Data Protection Act 2018 Part 3"
        text += (
            f", for {code_words(basis.part3_purpose)}"
            if basis.part3_purpose
            else " (its law-enforcement purpose is not recorded)"
        )
    else:
        text = f"{name}: {code_words(basis.article6 or '')}"
        if basis.article6 == "a6_1_ea_recognised_legitimate_interest":
            text += (
                f", for {code_words(basis.rli_condition)}"
                if basis.rli_condition
                else "; the Annex 1 condition it relies on is not recorded"
            )
    return Node(text, tuple(_conditions(basis)), key=("basis", agency))


def _purposes(isa: Isa) -> Iterator[Section]:
    count = len(isa.doc.purposes)
    for n, purpose in enumerate(isa.doc.purposes, 1):
        items = [
            Node(f"{label}: {text}")
            for label, text in (
                ("Why it is necessary", purpose.necessity),
                ("Why it is proportionate", purpose.proportionality),
                ("Benefits", purpose.benefits),
            )
            if text
        ]
        items += [Node(f"Considered instead: {a}") for a in purpose.alternatives_considered]
        bases = tuple(_basis(isa, a, b) for a, b in purpose.lawful_basis.items())
        items.append(Node("Legal footing of each party:", bases))
        heading = "Why they share" + (f" ({n} of {count})" if count > 1 else "")
        yield Section(heading, (purpose.description,), tuple(items), key=("purpose", purpose.id))


def _consent_text(isa: Isa, flow: Flow, level: RiskLevel) -> str:
    rule = getattr(isa.consent_for(flow), level)
    text = "Practice consent: " + CONSENT_WORDS[rule.requires]
    if rule.requires != "not_required":
        text += "; " + OTHERWISE_WORDS[rule.otherwise]
    return text + "."


def _sender_groups(isa: Isa, flow: Flow, mt: str) -> list[list[str]]:
    """Senders whose plans are identical at every level, in flow order."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for sender in flow.sender:
        plans = [plan_for(isa, flow, mt, level, sender) for level in RISK_LEVELS]
        signature = tuple((p.released, tuple(sorted(p.transforms.items()))) for p in plans)
        groups.setdefault(signature, []).append(sender)
    return list(groups.values())


def _withheld_note(plan: LevelPlan, name: str) -> Iterator[Node]:
    for code, what in (
        ("no_special_category_condition", "special category"),
        ("no_criminal_offence_condition", "criminal-offence"),
    ):
        paths = [p for p, c in plan.withheld.items() if c == code]
        if paths:
            lines = tuple(Node(t) for t in field_lines(paths, plan.labels, {}))
            yield Node(
                f"{name} has no condition recorded for {what} information, so these are withheld:",
                lines,
            )


def _fields(isa: Isa, flow: Flow, mt: str, level: RiskLevel, senders: list[str]) -> Node:
    plan = plan_for(isa, flow, mt, level, senders[0])
    below = RISK_LEVELS[RISK_LEVELS.index(level) - 1] if level != "standard" else None
    before = plan_for(isa, flow, mt, below, senders[0]) if below else None
    cumulative = before is not None and _decides(flow, below) and before.released <= plan.released
    shown = before.released if cumulative and before is not None else frozenset()
    changed = {p for p in shown if before and before.transforms.get(p) != plan.transforms.get(p)}
    notes = {
        p: TRANSFORM_WORDS.get(plan.transforms.get(p, ""), "now in full")
        for p in plan.released
        if p in plan.transforms or p in changed
    }
    lines = [Node(t) for t in field_lines((plan.released - shown) | changed, plan.labels, notes)]
    if cumulative:
        lines.insert(0, Node(f"everything shared at {below} risk, and also:"))
    lines += _withheld_note(plan, _names(isa, senders))
    text = f"A {message_type_words(mt)} from {_names(isa, senders)} may contain:"
    return Node(text, tuple(lines), key=("fields", flow.id, mt, level, "+".join(senders)))


def _decides(flow: Flow, level: RiskLevel | None) -> bool:
    rule = flow.by_risk_level.rule(level) if level else None
    return rule is not None and rule.decision != "deny"


def _level(isa: Isa, flow: Flow, level: RiskLevel) -> Node:
    rule = flow.by_risk_level.rule(level)
    decision = rule.decision if rule else "deny"
    children: list[Node] = []
    if decision != "deny":
        children.append(Node(_consent_text(isa, flow, level)))
        for mt in flow.message_types:
            children += [_fields(isa, flow, mt, level, g) for g in _sender_groups(isa, flow, mt)]
    text = f"At {level} risk: {DECISION_WORDS[decision]}."
    return Node(text, tuple(children), key=("level", flow.id, level))


def _denied(isa: Isa, flow: Flow) -> Iterator[Node]:
    for mt in flow.message_types:
        labels = labels_for(isa, mt) or {}
        paths = expand(flow.deny_fields, labels) - never_share_paths(isa, labels)
        if paths:
            lines = tuple(Node(t) for t in field_lines(paths, labels, {}))
            text = f"Never passed on in a {message_type_words(mt)} by this flow, whatever the risk:"
            yield Node(text, lines, key=("deny", flow.id, mt))


def _handling(isa: Isa, flow: Flow) -> Iterator[Node]:
    """The released fields' own handling labels, which the evaluator turns into duties."""
    for mt in flow.message_types:
        released: set[str] = set()
        for sender in flow.sender:
            for level in RISK_LEVELS:
                if _decides(flow, level):
                    released |= plan_for(isa, flow, mt, level, sender).released
        labels = labels_for(isa, mt) or {}
        by_label: dict[str, list[str]] = {}
        for path in released:
            for label in labels[path].handling:
                by_label.setdefault(label, []).append(path)
        for label, paths in sorted(by_label.items()):
            lines = tuple(Node(t) for t in field_lines(paths, labels, {}))
            if label.startswith("must_not_disclose_to:"):
                who = WHO_WORDS.get(label.split(":", 1)[1], label.split(":", 1)[1])
                yield Node(
                    f"must never let {who} learn these details:",
                    lines,
                    key=("handling", flow.id, mt, label),
                )
            elif label == "originator_control":
                yield Node(
                    "may use or pass on these only as the sender agrees (originator control):",
                    lines,
                    key=("handling", flow.id, mt, label),
                )


def _duties(isa: Isa, flow: Flow) -> Node:
    ob = flow.obligations
    duties: list[Node] = []
    if ob.must_not_inform:
        who = " or ".join(WHO_WORDS[w] for w in ob.must_not_inform.who)
        duties.append(Node(f"must not tell {who} about this referral", key=("must_not_inform",)))
    if ob.no_onward_disclosure:
        duties.append(
            Node(
                "must not pass it on to anyone else without the sender's agreement",
                key=("no_onward_disclosure",),
            )
        )
    if ob.retain:
        duties.append(
            Node(
                f"must delete it {period(ob.retain.period)} after {START_WORDS[ob.retain.start]}",
                key=("retain",),
            )
        )
    if ob.notify_originator:
        events = tuple(Node(EVENTS_WORDS[e]) for e in ob.notify_originator)
        duties.append(Node("must tell the sender about:", events, key=("notify_originator",)))
    if ob.log:
        duties.append(
            Node(
                "must log each time it is looked at or passed on: who, when and why, "
                "and to whom (the standard of the Data Protection Act 2018 s62)",
                key=("log",),
            )
        )
    duties += _handling(isa, flow)
    if not duties:
        duties.append(Node("no duties beyond the law are set by this agreement"))
    return Node(
        f"What {_names(isa, flow.to)} must do with it:", tuple(duties), key=("duties", flow.id)
    )


def _when(flow: Flow) -> Iterator[Node]:
    said = [text for text in (TRIGGERS_WORDS.get(flow.trigger or ""), flow.frequency) if text]
    if said:
        yield Node("When: " + "; ".join(said) + ".")
    if flow.channel:
        yield Node(f"How: {flow.channel}.")


def _flow(isa: Isa, flow: Flow) -> Section:
    kinds = " or a ".join(message_type_words(mt) for mt in flow.message_types)
    heading = f"{_names(isa, flow.sender)} may send a {kinds} to {_names(isa, flow.to)}"
    purpose = isa.purpose(flow.purpose)
    paragraphs = [flow.description] if flow.description else []
    if purpose is not None:
        paragraphs.append(f"Why: {purpose.description}")
    items = [*_when(flow), *(_level(isa, flow, level) for level in RISK_LEVELS)]
    items += [*_denied(isa, flow), _duties(isa, flow)]
    return Section(heading, tuple(paragraphs), tuple(items), key=("flow", flow.id))


def _one_way(isa: Isa) -> Iterator[Node]:
    pairs = {(s, r) for f in isa.doc.flows for s in f.sender for r in f.to}
    for sender, recipient in sorted(pairs):
        if (recipient, sender) not in pairs:
            yield Node(
                f"Nothing is sent back from {_names(isa, [recipient])} to "
                f"{_names(isa, [sender])} under this agreement."
            )


def _never(isa: Isa) -> Section:
    lines: list[Node] = []
    seen: set[str] = set()
    for mt in dict.fromkeys(mt for f in isa.doc.flows for mt in f.message_types):
        labels = labels_for(isa, mt) or {}
        paths = never_share_paths(isa, labels) - seen
        seen |= paths
        lines += [Node(t) for t in field_lines(paths, labels, {})]
    if not lines:
        lines = [Node("nothing extra: only what is listed above is shared")]
    return Section("Never shared, whatever the risk", items=tuple(lines), key=("never",))


def explanation(isa: Isa) -> Explanation:
    """The whole ISA as a document of sections."""
    sections = [_about(isa)]
    parties = tuple(_party(p) for p in isa.doc.parties)
    sections.append(Section("Who takes part", items=parties, key=("parties",)))
    sections += _purposes(isa)
    sections += [_flow(isa, flow) for flow in isa.doc.flows]
    back = tuple(_one_way(isa))
    if back:
        sections.append(Section("Nothing comes back", items=back, key=("one_way",)))
    sections += [_never(isa), *element_sections(isa)]
    sections.append(Section("Anything else", ("Anything not listed above is not shared.",)))
    return Explanation(isa.doc.isa.title, tuple(sections))


def explain(isa: Isa) -> str:
    """The whole ISA in plain English, as text."""
    return render_text(explanation(isa))


def explain_html(isa: Isa) -> str:
    """The whole ISA in plain English, as one self-contained HTML page."""
    return render_html(explanation(isa))
