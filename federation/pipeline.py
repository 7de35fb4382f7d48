"""The message pipeline's pure steps, between the case system and the envelope.

This module performs no I/O. The sending agent calls :func:`prepare` (schema -> ISA decision ->
minimisation -> envelope spec) and then ``envelope.seal``; the receiving agent calls
``envelope.open_envelope`` (steps 1-8) and then :func:`accept` (steps 9-12), numbered as in
docs/protocol.md section 6:

9.  our own copy of the ISA is the one the envelope cites (same SHA-256);
10. the payload matches its message type, in its minimised form;
11. the signed lawful-basis tags are the ones our ISA states for this purpose and these parties;
12. every field present is one the ISA allows at the stated risk level, in the form it requires
    (receiver-side enforcement: a misbehaving sender is caught here).

Lawful-basis tags are the ISA's per-party basis flattened to ``{"<agency>.<field>": code or
[codes]}`` (empty fields omitted), so the meta stays a flat, signed map of codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from federation.envelope import EnvelopeSpec, Header, IsaRef, Opened
from federation.errors import EnvelopeRejected, PayloadInvalid
from federation.isa import (
    Decision,
    Isa,
    IsaRegistry,
    ReferralFacts,
    check_received,
    evaluate_and_minimise,
)
from federation.referrals import parse_payload

__all__ = [
    "Accepted",
    "Prepared",
    "accept",
    "expected_lawful_basis",
    "lawful_basis_tags",
    "leaf_paths",
    "prepare",
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
    spec = EnvelopeSpec(
        type=message_type,
        sender=sender,
        recipient=recipient,
        isa=IsaRef(id=isa.id, version=isa.version, sha256=isa.sha256),
        purpose=purpose,
        lawful_basis=lawful_basis_tags(decision.lawful_basis),
        risk=decision.risk_level,
        handling=list(decision.handling),
        expires_at=now + ttl,
    )
    return Prepared(decision, minimised, spec)


@dataclass(frozen=True)
class Accepted:
    """An envelope that passed every check: its header and the (minimised) payload."""

    header: Header
    payload: dict[str, Any]
    envelope_sha256: str


def accept(opened: Opened, registry: IsaRegistry) -> Accepted:
    """Steps 9-12 on an opened envelope; raises ``EnvelopeRejected(reason)``."""
    header = opened.header
    isa = registry.get(header.isa.id)  # 9. our copy is the cited one
    if isa is None or isa.sha256 != header.isa.sha256:
        raise EnvelopeRejected("isa_mismatch", "our copy of the ISA differs from the cited one")
    try:  # 10. payload schema
        parse_payload(header.type, opened.payload, minimised=True)
    except PayloadInvalid as exc:
        raise EnvelopeRejected("payload_invalid", ", ".join(sorted(exc.errors))) from None
    expected = expected_lawful_basis(isa, header.purpose, header.sender, header.to)
    if header.lawful_basis != expected:  # 11. signed lawful-basis tags
        raise EnvelopeRejected("lawful_basis_mismatch")
    violations = check_received(  # 12. fields within the ISA at this risk level
        isa,
        sender=header.sender,
        recipient=header.to,
        purpose=header.purpose,
        message_type=header.type,
        risk_level=header.risk,
        payload=opened.payload,
    )
    if violations:
        raise EnvelopeRejected("isa_violation", "; ".join(violations))
    return Accepted(header, opened.payload, opened.envelope_sha256)


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
