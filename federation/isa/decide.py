"""Decide and minimise in one walk over the payload: the sending agent's hot path.

This module performs no I/O.

``evaluate_and_minimise(...)`` returns exactly ``(evaluate(...), minimise(payload, decision))``
(a property test holds it to that), but walks the payload once instead of twice: while it lists
the catalogue paths present (for the decision) it copies, and generalises, the ones the plan
releases (for the minimised payload). Rules:

1. The copy plan is compiled once per (flow, risk level, sender, message type) and memoised on
   the plan: every catalogue leaf carries ``None`` (withheld), ``""`` (kept as is) or its
   transform.
2. Denials, unknown ISAs and other gate failures take the ordinary ``evaluate`` path (rare).
3. Unknown fields raise ``PayloadInvalid`` exactly as ``evaluate`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from federation.isa.evaluation import (
    Decision,
    EvalContext,
    ReferralFacts,
    build_decision,
    evaluate,
    fields_found,
    gates,
)
from federation.isa.model import Isa
from federation.isa.plan import LEAF, LIST, OBJECT, LevelPlan, PathShape, plan_for
from federation.isa.transforms import transform_value

__all__ = ["evaluate_and_minimise"]

CopyShape = dict[str, tuple[Any, ...]]


def _copy_shape(plan: LevelPlan) -> CopyShape:
    cached: CopyShape | None = plan.memo.get(("copy-shape",))
    if cached is None:
        cached = plan.memo[("copy-shape",)] = _compile(plan.shape, plan)
    return cached


def _compile(shape: PathShape, plan: LevelPlan) -> CopyShape:
    out: CopyShape = {}
    for key, node in shape.items():
        if node[0] == LEAF:
            path = node[1]
            mode = plan.transforms.get(path, "") if path in plan.released else None
            out[key] = (LEAF, path, mode)
        else:
            out[key] = (node[0], _compile(node[1], plan))
    return out


def _walk(
    obj: Mapping[str, Any],
    shape: CopyShape,
    prefix: str,
    found: list[str],
    unknown: list[str],
    today: date,
) -> dict[str, Any]:
    """List present paths into ``found`` and return the released, generalised copy."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if value is None:
            continue
        node = shape.get(key)
        if node is None:
            unknown.append(prefix + key)
            continue
        kind = node[0]
        if kind == LEAF:
            found.append(node[1])
            mode = node[2]
            if mode == "":
                out[key] = value
            elif mode is not None:
                generalised = transform_value(mode, value, today)
                if generalised is not None:
                    out[key] = generalised
        elif kind == OBJECT and (type(value) is dict or isinstance(value, Mapping)):
            sub = _walk(value, node[1], f"{prefix}{key}.", found, unknown, today)
            if sub:
                out[key] = sub
        elif kind == LIST and type(value) is list:
            items = []
            for item in value:
                if type(item) is dict or isinstance(item, Mapping):
                    items.append(_walk(item, node[1], f"{prefix}{key}[].", found, unknown, today))
                else:
                    unknown.append(f"{prefix}{key}[]")
            if any(items):
                out[key] = items
        else:
            unknown.append(prefix + key)
    return out


def evaluate_and_minimise(
    isa: Isa,
    *,
    sender: str,
    recipient: str,
    purpose: str,
    message_type: str,
    referral: Any,
    now: datetime,
) -> tuple[Decision, dict[str, Any]]:
    """``(evaluate(...), minimise(payload, decision))`` in one walk (see the module rules)."""
    facts = ReferralFacts.of(referral)
    ctx = EvalContext(isa, sender, recipient, purpose, message_type, facts, now)
    outcome, flow, gate_reasons = gates(ctx)
    if outcome == "DENY" or flow is None:
        decision = evaluate(isa, sender=sender, recipient=recipient, purpose=purpose,
                            message_type=message_type, referral=facts, now=now)  # fmt: skip
        return decision, {}
    plan = plan_for(isa, flow, message_type, facts.risk_level, sender)
    today = (now.astimezone(UTC) if now.tzinfo is not None else now).date()
    found: list[str] = []
    unknown: list[str] = []
    copied = _walk(facts.payload, _copy_shape(plan), "", found, unknown, today)
    fields = fields_found(ctx, plan, found, unknown)
    decision = build_decision(ctx, outcome, flow, gate_reasons, plan, fields)
    if decision.outcome == "DENY" or not decision.shared_fields:
        return decision, {}
    return decision, copied
