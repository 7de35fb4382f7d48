"""Words for ``policy explain``: field labels, message types, periods, duties and legal codes.

This module performs no I/O.

Rules:
1. A field is shown by its catalogue description, prefixed by whose it is when the description
   does not say (``perpetrators[].address`` -> "each perpetrator: home address"); a field with
   no description falls back to its path in words. Never an id or a code.
2. Fields keep the catalogue's order (the order of the referral form), so DASH questions read
   1, 2, ... 24. A question's answer, source and comment are one line.
3. A legal code is shown as its words and its citation ("preventing or detecting crime
   (DPA 2018 Sch 1 para 10)"); a code the glossary does not know is shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from federation.isa.catalogue import FieldLabels
from federation.isa.codes import CODE_WORDS, citation

__all__ = [
    "CONSENT_WORDS",
    "DECISION_WORDS",
    "EVENTS_WORDS",
    "MESSAGE_TYPE_WORDS",
    "OTHERWISE_WORDS",
    "REVIEW_TRIGGERS_WORDS",
    "START_WORDS",
    "STATUS_WORDS",
    "TRANSFORM_WORDS",
    "TRIGGERS_WORDS",
    "WHO_WORDS",
    "code_words",
    "field_lines",
    "field_phrase",
    "message_type_words",
    "period",
]

#: How a head of a field path is said; "" means the description says it all.
_HEADS: Mapping[str, str] = {
    "victim": "victim",
    "client": "client",
    "partner": "partner",
    "perpetrator": "perpetrator",
    "perpetrators[]": "each perpetrator",
    "children[]": "each child",
    "other_subjects[]": "each other person at the incident",
    "other_professionals[]": "each other professional",
    "referrer": "referrer",
    "officer": "police officer",
    "mens_worker": "men's worker",
    "victim_safe_contact": "victim's safe contact",
    "safe_contact": "client's safe contact",
    "address": "client's address",
    "diversity": "victim's diversity",
    "criteria": "MARAC criterion",
    "adult_at_risk": "adult at risk test",
    "share_decision": "police sharing decision",
    "justice": "justice",
    "court_order": "court order",
    "consent": "",
    "previous_marac": "",
    "dash": "",
    "supervisor_review": "",
    "views": "",
    "risk_assessment": "",
    "risk": "",
    "man": "",
    "assessed_risk": "",
}
_SINGULAR = {"children": "child", "perpetrators": "perpetrator"}
_PRACTITIONER = "practitioner's "
_PRACTITIONER_HEADS = frozenset({"referrer", "officer", "mens_worker", "other_professionals[]"})

MESSAGE_TYPE_WORDS: Mapping[str, str] = {
    "marac_referral": "MARAC referral",
    "dash_risk_assessment": "DASH risk assessment",
    "police_concern": "police concern report",
    "support_referral": "support referral",
    "caledonian_partner_contact": "Caledonian partner-contact referral",
}

_UNITS = {"Y": "year", "M": "month", "W": "week", "D": "day", "H": "hour"}
_QUESTION = re.compile(r"^(?P<stem>.*\.q(?P<n>\d+))\.(?P<part>answer|source|comment)$")
_PARTS = {"answer": "the answer", "source": "who gave it", "comment": "any comment"}


def message_type_words(message_type: str) -> str:
    return MESSAGE_TYPE_WORDS.get(message_type, message_type.replace("_", " "))


def period(duration: str) -> str:
    """``P2Y`` -> ``2 years``; ``PT24H`` -> ``24 hours``."""
    parts = re.findall(r"(\d+)([YMWDH])", duration)
    return " ".join(f"{n} {_UNITS[u]}{'' if n == '1' else 's'}" for n, u in parts)


def code_words(code: str) -> str:
    """A legal code in words with its citation; an unknown code as it is."""
    words, cite = CODE_WORDS.get(code), citation(code)
    if words is None:
        return code
    return f"{words} ({cite})" if cite else words


def _path_words(path: str) -> str:
    head, _, rest = path.partition(".")
    said = _HEADS.get(head, head.removesuffix("[]").replace("_", " "))
    rest = rest.replace("[].", " / ").replace(".", " / ").replace("_", " ")
    return f"{said}: {rest}" if said and rest else (rest or said)


def field_phrase(path: str, description: str) -> str:
    """A field as a practitioner would say it: whose it is, then what it is."""
    if not description:
        return _path_words(path)
    head = path.split(".", 1)[0] if "." in path else ""
    said = _HEADS.get(head, head.removesuffix("[]").replace("_", " "))
    if not said:
        return description
    if head in _PRACTITIONER_HEADS:
        return f"{said}: {description.removeprefix(_PRACTITIONER)}"
    whose = head.removesuffix("[]")
    if description.startswith(f"{_SINGULAR.get(whose, whose)}'s "):
        return f"each {description}" if head.endswith("[]") else description
    return f"{said}: {description}"


def _question_line(stem: str, parts: list[str], labels: Mapping[str, FieldLabels]) -> str:
    first = labels[f"{stem}.{parts[0]}"].description
    label = first.split(": ", 1)[1] if ": " in first else first
    number = stem.rsplit(".q", 1)[1]
    said = ", ".join(_PARTS[p] for p in parts)
    prefix = "DASH question" if stem.startswith("dash.") else "question"
    return f"{prefix} {number}: {label} ({said})"


def field_lines(
    paths: Iterable[str], labels: Mapping[str, FieldLabels], notes: Mapping[str, str]
) -> Iterator[str]:
    """One line per field in catalogue order, a question's parts on one line; ``notes`` adds
    words to a field ("as an age range only"), and a noted question part is shown alone."""
    chosen = set(paths)
    done: set[str] = set()
    for path in labels:
        if path not in chosen or path in done:
            continue
        found = _QUESTION.match(path)
        if found and not any(f"{found['stem']}.{p}" in notes for p in _PARTS):
            parts = [p for p in _PARTS if f"{found['stem']}.{p}" in chosen]
            done.update(f"{found['stem']}.{p}" for p in parts)
            yield _question_line(found["stem"], parts, labels)
            continue
        note = notes.get(path)
        text = field_phrase(path, labels[path].description)
        yield f"{text} ({note})" if note else text


# --- words for the rules of an ISA (used by ``explanation``) ------------------------------

STATUS_WORDS: Mapping[str, str] = {
    "active": "in use",
    "draft": "a draft: nothing can be shared under it",
    "suspended": "suspended: nothing can be shared under it",
    "terminated": "ended: nothing can be shared under it",
}
DECISION_WORDS: Mapping[str, str] = {
    "permit": "may be shared",
    "review": "may be shared once a supervisor has reviewed and approved it",
    "deny": "nothing is shared",
}
CONSENT_WORDS: Mapping[str, str] = {
    "not_required": "the victim's agreement is not needed",
    "agreement_given": "only with the victim's recorded agreement",
    "agreement_or_reason_recorded": (
        "with the victim's recorded agreement, or without it if the reason is recorded"
    ),
}
OTHERWISE_WORDS: Mapping[str, str] = {
    "deny": "otherwise nothing is shared",
    "review": "otherwise a supervisor reviews it and decides before anything is sent",
}
TRANSFORM_WORDS: Mapping[str, str] = {
    "age_band": "as an age range only",
    "postcode_district": "as the first part of the postcode only",
    "year": "as the year only",
}
START_WORDS: Mapping[str, str] = {
    "received": "it is received",
    "case_closed": "the case is closed",
    "last_activity": "the last activity on the case",
}
WHO_WORDS: Mapping[str, str] = {
    "perpetrator": "the perpetrator",
    "victim": "the victim",
    "child": "the child",
    "third_party": "anyone else it names",
}
EVENTS_WORDS: Mapping[str, str] = {
    "rectification": "any correction to the information",
    "erasure_request": "any request to erase it",
    "breach": "any data breach involving it",
    "onward_request": "any request to pass it on",
    "sar_received": "any subject access request that covers it",
}
TRIGGERS_WORDS: Mapping[str, str] = {
    "event": "each time something happens that calls for it",
    "scheduled": "on a schedule",
    "on_request": "when asked",
}
REVIEW_TRIGGERS_WORDS: Mapping[str, str] = {
    "change_in_law": "a change in the law",
    "lawful_basis_change": "a change of lawful basis",
    "personal_data_breach": "a personal data breach",
    "party_added": "a party joining",
    "party_left": "a party leaving",
    "dpia_revised": "a revised DPIA",
}
