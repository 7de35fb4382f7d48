"""Who each field is about, how sensitive it is, and how it must be handled: the label tables.

This module performs no I/O; it is data, reviewed like code.

Rules:
1. Every leaf path of every message type has exactly one label (a test proves it).
2. Sub-model tables are written once with relative paths and placed with ``under(prefix,
   table, role)``; a label without its own roles takes the role of the place it is put.
3. A field placed under the ``child`` role also gets the ``child`` data class.
4. Fields that can locate or contact the victim are ``must_not_disclose_to:perpetrator``; the
   refuge address is also ``never_share``; the perpetrator's criminal history is
   ``originator_control``. Administrative fields have no subject and no data class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from federation.referrals.dash import DASH_LABELS, DASH_QUESTIONS
from federation.referrals.kinds import DataClass, SubjectRole

__all__ = [
    "NEVER_SHARE",
    "NOT_TO_PERPETRATOR",
    "ORIGINATOR_CONTROL",
    "Label",
    "Table",
    "dash_table",
    "lbl",
    "under",
]

NEVER_SHARE = "never_share"
NOT_TO_PERPETRATOR = "must_not_disclose_to:perpetrator"
ORIGINATOR_CONTROL = "originator_control"

V, P, C = SubjectRole.VICTIM, SubjectRole.PERPETRATOR, SubjectRole.CHILD
T, PR = SubjectRole.THIRD_PARTY, SubjectRole.PRACTITIONER
PD, SC, CO = DataClass.PERSONAL, DataClass.SPECIAL_CATEGORY, DataClass.CRIMINAL_OFFENCE
LOC, CH = DataClass.SENSITIVE_LOCATION, DataClass.CHILD


@dataclass(frozen=True, slots=True)
class Label:
    """One field's description, data classes, handling and (optionally) its own roles."""

    description: str
    data_classes: frozenset[DataClass]
    handling: frozenset[str]
    roles: frozenset[SubjectRole] | None


Table = Mapping[str, Label]


def lbl(
    description: str,
    *classes: DataClass,
    roles: Iterable[SubjectRole] | None = None,
    handling: Iterable[str] = (),
) -> Label:
    """A label; ``roles=None`` means "the role of the place it is put"."""
    return Label(
        description,
        frozenset(classes),
        frozenset(handling),
        None if roles is None else frozenset(roles),
    )


def under(
    prefix: str, table: Table, role: SubjectRole | None, handling: Iterable[str] = ()
) -> dict[str, Label]:
    """Place ``table`` at ``prefix``, filling in ``role`` and adding ``handling`` to each label.

    With ``role=None`` labels without roles stay without, to be filled in at the next level.
    """
    extra = frozenset(handling)
    placed: dict[str, Label] = {}
    for path, label in table.items():
        roles = label.roles
        if roles is None and role is not None:
            roles = frozenset([role])
        classes = label.data_classes
        if roles is not None and C in roles and classes:
            classes = classes | {CH}
        placed[prefix + path] = Label(label.description, classes, label.handling | extra, roles)
    return placed


# Shared sub-models ---------------------------------------------------------------------------

PRACTITIONER: Table = {
    "name": lbl("practitioner's name", PD),
    "role": lbl("practitioner's job role"),
    "agency": lbl("practitioner's agency"),
    "phone": lbl("practitioner's work phone", PD),
    "email": lbl("practitioner's work e-mail", PD),
}

SAFE_CONTACT: Table = {
    "phone": lbl("phone number that is safe to use", PD, handling=[NOT_TO_PERPETRATOR]),
    "email": lbl("e-mail address that is safe to use", PD, handling=[NOT_TO_PERPETRATOR]),
    "safe_times": lbl("times it is safe to make contact", PD, handling=[NOT_TO_PERPETRATOR]),
    "safe_to_leave_message": lbl(
        "whether a message may be left", PD, handling=[NOT_TO_PERPETRATOR]
    ),
    "code_word": lbl("agreed code word", PD, handling=[NOT_TO_PERPETRATOR]),
}

CONSENT: Table = {
    "victim_aware": lbl("whether the victim knows of the referral", PD, roles=[V]),
    "agreement": lbl("whether the victim agreed to the referral", PD, roles=[V]),
    "reason_not_sought": lbl("why agreement was not sought", PD, roles=[V]),
    "recorded_at": lbl("when the practice consent was recorded", roles=[V]),
}

_DASH_SUBJECTS: dict[str, tuple[frozenset[SubjectRole], frozenset[DataClass]]] = {}


def _dash(qs: str, roles: Iterable[SubjectRole], *classes: DataClass) -> None:
    for q in qs.split():
        _DASH_SUBJECTS[q] = (frozenset([V, *roles]), frozenset([PD, *classes]))


_dash("q2 q6", [])
_dash("q5 q9", [], SC)
_dash("q1 q15 q16", [P], SC, CO)
_dash("q3", [P, C], CO, CH)
_dash("q7", [C], CH)
_dash("q4 q8 q10 q11 q12 q13 q14 q19 q23 q24", [P], CO)
_dash("q17", [T], CO)
_dash("q18", [P, T], CO)
_dash("q20", [P])
_dash("q21 q22", [P], SC)


def dash_table() -> dict[str, Label]:
    """Labels for every leaf of a DASH checklist, relative to where it is embedded."""
    table: dict[str, Label] = {
        "scheme": lbl("risk assessment scheme"),
        "score": lbl("DASH score (number of yes answers)", PD, roles=[V]),
        "level": lbl("DASH risk level", PD, roles=[V]),
        "professional_judgement.level": lbl("risk level by professional judgement", PD, roles=[V]),
        "professional_judgement.justification": lbl(
            "reasons for the professional judgement", PD, SC, CO, roles=[V, P]
        ),
        "assessed_at": lbl("date of the assessment", roles=[V]),
        "assessor_org": lbl("agency that completed the checklist", roles=[PR]),
        "assessor_role": lbl("role of the assessor", roles=[PR]),
    }
    for q in DASH_QUESTIONS:
        roles, classes = _DASH_SUBJECTS[q]
        handling = [ORIGINATOR_CONTROL] if q == "q24" else []
        label = DASH_LABELS[q]
        for part, what in (("answer", "answer"), ("source", "source"), ("comment", "comment")):
            table[f"{q}.{part}"] = lbl(
                f"DASH {q} {what}: {label}", *classes, roles=roles, handling=handling
            )
    return table
