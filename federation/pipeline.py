"""The message pipeline's pure steps, between the case system and the envelope.

This module performs no I/O. The sending agent calls :func:`prepare` (schema -> ISA decision ->
minimisation -> envelope spec) and then ``envelope.seal``; for a referral a person approved after
a REVIEW decision it calls :func:`prepare_approved` (``federation.review`` rule 4). The receiving
agent calls ``federation.receive.receive``, whose step 11 (docs/protocol.md section 6) uses
:func:`expected_lawful_basis` from here.

Lawful-basis tags are the ISA's per-party basis flattened to ``{"<agency>.<field>": code or
[codes]}`` (empty fields omitted), so the meta stays a flat, signed map of codes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from federation.envelope import EnvelopeSpec, IsaRef
from federation.isa import (
    Decision,
    Isa,
    ReferralFacts,
    evaluate_and_minimise,
)
from federation.minimise import minimise
from federation.referrals import parse_payload
from federation.review import approval_decision

__all__ = [
    "Prepared",
    "expected_lawful_basis",
    "lawful_basis_tags",
    "leaf_paths",
    "prepare",
    "prepare_approved",
]

LawfulBasisTags = dict[str, str | list[str]]


def lawful_basis_tags(per_party: Mapping[str, Mapping[str, Any]]) -> LawfulBasisTags:
    """Flatten ``{agency: {field: value}}`` to ``{"agency.field": value}``, dropping empties."""
    tags: LawfulBasisTags = {}
    for agency, basis in per_party.items():
        for field, value in basis.items():
            if isinstance(value, str) and value:
                tags[f"{agency}.{field}"] = value
            elif isinstance(value, list) and value:
                tags[f"{agency}.{field}"] = [str(v) for v in value]
    return tags


def expected_lawful_basis(isa: Isa, purpose: str, sender: str, recipient: str) -> LawfulBasisTags:
    """The tags a message for ``purpose`` between these parties must carry under ``isa``."""
    found = isa.purpose(purpose)
    if found is None:
        return {}
    return lawful_basis_tags(
        {
            agency: found.lawful_basis[agency].model_dump(mode="json", exclude_defaults=True)
            for agency in (sender, recipient)
            if agency in found.lawful_basis
        }
    )


@dataclass(frozen=True)
class Prepared:
    """The decision, the minimised payload and (only when permitted) the envelope spec."""

    decision: Decision
    payload: dict[str, Any]
    spec: EnvelopeSpec | None


def prepare(
    isa: Isa,
    *,
    sender: str,
    recipient: str,
    purpose: str,
    message_type: str,
    payload: Mapping[str, Any],
    now: datetime,
    ttl: timedelta,
) -> Prepared:
    """Validate, decide and minimise a referral. Raises ``PayloadInvalid`` for a bad payload."""
    facts = ReferralFacts.of(parse_payload(message_type, payload))  # the payload dumped once
    decision, minimised = evaluate_and_minimise(  # decide and minimise in one walk
        isa,
        sender=sender,
        recipient=recipient,
        purpose=purpose,
        message_type=message_type,
        referral=facts,
        now=now,
    )
    if decision.outcome != "PERMIT":
        return Prepared(decision, {}, None)
    return Prepared(decision, minimised, _spec(isa, decision, now + ttl))


def prepare_approved(
    isa: Isa,
    *,
    sender: str,
    recipient: str,
    purpose: str,
    message_type: str,
    payload: Mapping[str, Any],
    keep: Collection[str] | None,
    now: datetime,
    ttl: timedelta,
) -> Prepared:
    """:func:`prepare` for a referral a reviewer approved at ``now``: the ISA decides again, and
    what it shares (PERMIT or REVIEW alike) is cut down to the reviewer's narrowing ``keep``
    (None: no narrowing). ``spec`` is None when the fresh decision is DENY or shares nothing."""
    facts = ReferralFacts.of(parse_payload(message_type, payload))
    decision, minimised = evaluate_and_minimise(
        isa, sender=sender, recipient=recipient, purpose=purpose, message_type=message_type,
        referral=facts, now=now,
    )  # fmt: skip
    approved = approval_decision(decision, keep)
    if approved.outcome == "DENY" or not approved.shared_fields:
        return Prepared(approved, {}, None)
    if approved.shared_fields != decision.shared_fields:
        minimised = minimise(facts.payload, approved)
    return Prepared(approved, minimised, _spec(isa, approved, now + ttl))


def _spec(isa: Isa, decision: Decision, expires_at: datetime) -> EnvelopeSpec:
    return EnvelopeSpec(
        type=decision.message_type,
        sender=decision.sender,
        recipient=decision.recipient,
        isa=IsaRef(id=isa.id, version=isa.version, sha256=isa.sha256),
        purpose=decision.purpose,
        lawful_basis=lawful_basis_tags(decision.lawful_basis),
        risk=decision.risk_level,
        handling=list(decision.handling),
        expires_at=expires_at,
    )


def leaf_paths(payload: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The catalogue-style leaf paths present in a JSON payload (lists of objects as ``[]``)."""
    paths: set[str] = set()
    _add_leaf_paths(payload, prefix, paths)
    return paths


def _add_leaf_paths(payload: Mapping[str, Any], prefix: str, paths: set[str]) -> None:
    for key, value in payload.items():
        if value is None:
            continue
        path = prefix + key
        if isinstance(value, Mapping):
            _add_leaf_paths(value, path + ".", paths)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for item in value:
                _add_leaf_paths(item, path + "[].", paths)
        else:
            paths.add(path)
