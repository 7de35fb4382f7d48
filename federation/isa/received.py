"""The receiving agent's check: is a decrypted payload within what the ISA allows?

This module performs no I/O.

Rules:
1. A flow must cover (sender, recipient, purpose, type) and its risk level must not be ``deny``.
2. Every path present must be in the catalogue, released at that risk level (so never a
   ``never_share`` or ``deny_fields`` path) and, where the ISA generalises it, in its generalised
   form (an age band, a postcode district, a year), never the full value.
3. The answer is the list of violations, each ``path: why``; empty means the payload is within
   the ISA. The caller turns a non-empty list into ``EnvelopeRejected("isa_violation")``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from federation.isa.model import Isa, RiskLevel
from federation.isa.plan import LevelPlan, plan_for
from federation.isa.transforms import is_transformed

__all__ = ["check_received", "payload_paths"]


def payload_paths(payload: Mapping[str, Any], known: Mapping[str, Any]) -> Iterator[str]:
    """Each catalogue leaf path present in ``payload`` (unknown paths too, to be rejected)."""
    return (path for path, _ in _leaf_values(payload, known))


def check_received(
    isa: Isa,
    *,
    sender: str,
    recipient: str,
    purpose: str,
    message_type: str,
    risk_level: RiskLevel,
    payload: Mapping[str, Any],
) -> list[str]:
    """For the RECEIVING agent: every way ``payload`` breaks the ISA; empty means it is within it.

    Checked: a flow covers the message and its risk level is not ``deny``; every path present is
    known, released at that level (never a ``never_share`` path) and in its transformed form.
    """
    flows = isa.flows_for(sender, recipient, purpose, message_type)
    if not flows:
        return [f"no flow in {isa.id} covers {sender} -> {recipient} {purpose} {message_type}"]
    plan = plan_for(isa, flows[0], message_type, risk_level, sender)
    if plan.decision == "deny":
        return [f"flow {flows[0].id!r} does not allow sharing at {risk_level} risk"]
    return _received_violations(plan, payload)


def _received_violations(plan: LevelPlan, payload: Mapping[str, Any]) -> list[str]:
    problems: set[str] = set()
    for path, value in _leaf_values(payload, plan.labels):
        if path not in plan.labels:
            problems.add(f"{path}: unknown field")
        elif path not in plan.released:
            problems.add(f"{path}: not allowed ({plan.withheld[path]})")
        elif path in plan.transforms and not is_transformed(plan.transforms[path], value):
            problems.add(f"{path}: not in the form the ISA requires ({plan.transforms[path]})")
    return sorted(problems)


def _leaf_values(payload: Mapping[str, Any], known: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Every (leaf path, value) in ``payload``; a path the catalogue lacks is its own leaf."""
    out: list[tuple[str, Any]] = []
    _collect(payload, "", known, out)
    return out


def _collect(
    obj: Mapping[str, Any], prefix: str, known: Mapping[str, Any], out: list[tuple[str, Any]]
) -> None:
    for key, value in obj.items():
        if value is None:
            continue
        path = prefix + key
        if path in known:
            out.append((path, value))
        elif type(value) is dict or isinstance(value, Mapping):
            _collect(value, path + ".", known, out)
        elif type(value) is list and value and isinstance(value[0], Mapping):
            for item in value:
                if isinstance(item, Mapping):
                    _collect(item, path + "[].", known, out)
        else:
            out.append((path, value))
