"""Evaluating a referral against an ISA: ``evaluate`` -> :class:`Decision`.

This module performs no I/O and reads no clock (``now`` is an argument).

Decision procedure (each step adds one plain-English line to ``reasons``; the first failing
step decides, deny-overrides):
1. The ISA is active and in date at ``now``            -> else DENY.
2. A flow covers (sender, recipient, purpose, type)    -> else DENY.
3. The sender has a lawful basis for the purpose       -> else DENY.
4. The risk level's decision is not ``deny``           -> else DENY.
5. The practice-consent rule for the risk level holds  -> else DENY or REVIEW, as the ISA says.
6. The risk level's decision: PERMIT, or REVIEW (a person must approve before sending).
7. Fields: each path present in the payload is released or withheld with a reason
   (see :mod:`federation.isa.plan`); a path not in the catalogue is ``PayloadInvalid``.
A DENY shares nothing. A REVIEW lists what would be shared if a person approves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from federation.errors import PayloadInvalid
from federation.isa.model import Flow, Isa, Obligations, RiskLevel
from federation.isa.plan import (
    LEAF,
    LIST,
    OBJECT,
    REASONS,
    LevelPlan,
    PathShape,
    path_shape,
    plan_for,
)

__all__ = [
    "Decision",
    "ReferralFacts",
    "WithheldField",
    "evaluate",
]

Outcome = Literal["PERMIT", "DENY", "REVIEW"]
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


class WithheldField(BaseModel):
    model_config = _STRICT
    path: str
    reason_code: str
    reason: str


class Decision(BaseModel):
    """What will be shared, what is withheld and why: shown to a practitioner before sending."""

    model_config = _STRICT
    outcome: Outcome
    isa_id: str
    isa_version: str
    isa_sha256: str
    flow_id: str | None
    sender: str
    recipient: str
    purpose: str
    message_type: str
    risk_level: RiskLevel
    decided_at: datetime
    shared_fields: tuple[str, ...]
    withheld_fields: tuple[WithheldField, ...]
    transforms: dict[str, str]
    obligations: Obligations | None
    lawful_basis: dict[str, dict[str, Any]]
    handling: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReferralFacts:
    """What evaluation needs from a referral: its risk level, practice consent and payload."""

    risk_level: RiskLevel
    payload: Mapping[str, Any]
    agreement: str | None = None
    reason_not_sought: str | None = None

    @classmethod
    def of(cls, referral: Any) -> ReferralFacts:
        """Facts from a ``federation.referrals`` referral (or pass ``ReferralFacts`` through)."""
        if isinstance(referral, ReferralFacts):
            return referral
        from federation import referrals  # lazy: keeps the engine testable with fakes

        consent = getattr(referral, "consent", None)
        return cls(
            risk_level=referral.risk_level,
            agreement=getattr(consent, "agreement", None),
            reason_not_sought=getattr(consent, "reason_not_sought", None),
            payload=referrals.payload_dict(referral),
        )


def _gate_isa(isa: Isa, today: date) -> str | None:
    header = isa.doc.isa
    if header.status != "active":
        return f"The agreement is {header.status}, so nothing can be shared under it."
    if today < header.effective_from:
        return f"The agreement does not start until {header.effective_from.isoformat()}."
    if header.effective_to is not None and today > header.effective_to:
        return f"The agreement ended on {header.effective_to.isoformat()}."
    return None


def _consent_problem(isa: Isa, flow: Flow, facts: ReferralFacts) -> tuple[str, str] | None:
    rule = getattr(isa.consent_for(flow), facts.risk_level)
    if rule.requires == "not_required" or facts.agreement == "given":
        return None
    if rule.requires == "agreement_or_reason_recorded" and facts.reason_not_sought:
        return None
    need = "the victim's recorded agreement"
    if rule.requires == "agreement_or_reason_recorded":
        need += " or a recorded reason for going ahead without it"
    return rule.otherwise.upper(), f"At {facts.risk_level} risk this agreement needs {need}."


_FieldResult = tuple[tuple[str, ...], tuple[WithheldField, ...], dict[str, str]]
_MEMO_LIMIT = 1024


class EvalContext:
    """The fixed inputs of one evaluation (keeps the step functions short)."""

    __slots__ = ("facts", "isa", "message_type", "now", "purpose", "recipient", "sender")

    def __init__(self, isa: Isa, sender: str, recipient: str, purpose: str,
                 message_type: str, facts: ReferralFacts, now: datetime) -> None:
        self.isa, self.sender, self.recipient = isa, sender, recipient
        self.purpose, self.message_type, self.facts, self.now = purpose, message_type, facts, now


def _decide_gates(ctx: EvalContext, reasons: list[str]) -> tuple[Outcome, Flow | None]:
    isa = ctx.isa
    gate = _gate_isa(isa, ctx.now.astimezone(UTC).date())
    if gate:
        reasons.append(gate)
        return "DENY", None
    reasons.append(f"The agreement {isa.id} version {isa.version} is active and in date.")
    flows = isa.flows_for(ctx.sender, ctx.recipient, ctx.purpose, ctx.message_type)
    if not flows:
        reasons.append(
            f"The agreement does not allow {ctx.sender} to send a {ctx.message_type} "
            f"to {ctx.recipient} for {ctx.purpose}."
        )
        return "DENY", None
    flow = flows[0]
    reasons.append(f"It is covered by the flow {flow.id!r}.")
    purpose = isa.purpose(flow.purpose)
    if purpose is None or ctx.sender not in purpose.lawful_basis:
        reasons.append(f"{ctx.sender} has no lawful basis recorded for this purpose.")
        return "DENY", flow
    rule = flow.by_risk_level.rule(ctx.facts.risk_level)
    if rule is None or rule.decision == "deny":
        reasons.append(f"At {ctx.facts.risk_level} risk this flow does not allow sharing.")
        return "DENY", flow
    consent = _consent_problem(isa, flow, ctx.facts)
    if consent is not None:
        reasons.append(consent[1])
        return ("REVIEW" if consent[0] == "REVIEW" else "DENY"), flow
    if rule.decision == "review":
        reasons.append(f"At {ctx.facts.risk_level} risk a person must review this before it goes.")
        return "REVIEW", flow
    reasons.append(f"At {ctx.facts.risk_level} risk this flow permits sharing.")
    return "PERMIT", flow


def _present(
    obj: Mapping[str, Any], shape: PathShape, prefix: str, out: list[str], unknown: list[str]
) -> None:
    """Append each catalogue leaf path present in ``obj``; paths not in the catalogue go to
    ``unknown`` (so does a value of the wrong kind where an object or list was expected).
    Hot path: ``type(x) is dict`` is tried before the slower ``isinstance(x, Mapping)``."""
    for key, value in obj.items():
        if value is None:
            continue
        node = shape.get(key)
        if node is None:
            unknown.append(prefix + key)
            continue
        kind = node[0]
        if kind == LEAF:
            out.append(node[1])
        elif kind == OBJECT and (type(value) is dict or isinstance(value, Mapping)):
            flat = node[2]
            if flat is not None and value.keys() <= flat.keys() and None not in value.values():
                out.extend(map(flat.__getitem__, value))
            elif flat is not None and value.keys() <= flat.keys():
                for k, v in value.items():
                    if v is not None:
                        out.append(flat[k])
            else:
                _present(value, node[1], f"{prefix}{key}.", out, unknown)
        elif kind == LIST and type(value) is list:
            for item in value:
                if type(item) is dict or isinstance(item, Mapping):
                    _present(item, node[1], f"{prefix}{key}[].", out, unknown)
                else:
                    unknown.append(f"{prefix}{key}[]")
        else:
            unknown.append(prefix + key)


def gates(ctx: EvalContext) -> tuple[Outcome, Flow | None, tuple[str, ...]]:
    """Steps 1-6 depend only on these facts, so their result is memoised on the ISA."""
    facts = ctx.facts
    key = ("gates", ctx.sender, ctx.recipient, ctx.purpose, ctx.message_type, facts.risk_level,
           facts.agreement, bool(facts.reason_not_sought),
           ctx.now.astimezone(UTC).date().toordinal())
    memo = ctx.isa._memo
    found = memo.get(key)
    if found is None:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        reasons: list[str] = []
        outcome, flow = _decide_gates(ctx, reasons)
        found = memo[key] = (outcome, flow, tuple(reasons))
    result: tuple[Outcome, Flow | None, tuple[str, ...]] = found
    return result


def _fields(ctx: EvalContext, plan: LevelPlan | None) -> _FieldResult:
    shape = plan.shape if plan is not None else path_shape(_labels_or_empty(ctx))
    found: list[str] = []
    unknown: list[str] = []
    _present(ctx.facts.payload, shape, "", found, unknown)
    return fields_found(ctx, plan, found, unknown)


def fields_found(
    ctx: EvalContext, plan: LevelPlan | None, found: list[str], unknown: list[str]
) -> _FieldResult:
    """Shared, withheld and transforms from the paths a walk found (memoised per plan)."""
    if unknown:
        errors = dict.fromkeys(sorted(set(unknown)), "unknown field")
        raise PayloadInvalid(f"the {ctx.message_type} payload has unknown fields", errors)
    key = tuple(found)
    if plan is not None and key in plan.memo:
        result: _FieldResult = plan.memo[key]
        return result
    present = set(found)
    shared = tuple(sorted(p for p in present if plan is not None and p not in plan.withheld))
    withheld = tuple(
        WithheldField.model_construct(path=p, reason_code=code, reason=REASONS[code])
        for p in sorted(present)
        for code in ["denied" if plan is None else plan.withheld.get(p)]
        if code is not None
    )
    transforms: dict[str, str] = {}
    if plan is not None:
        transforms = {p: t for p, t in plan.transforms.items() if p in present}
        if len(plan.memo) >= _MEMO_LIMIT:
            plan.memo.clear()
        plan.memo[key] = (shared, withheld, transforms)
    return shared, withheld, transforms


def _labels_or_empty(ctx: EvalContext) -> Mapping[str, Any]:
    from federation.isa.plan import labels_for

    return labels_for(ctx.isa, ctx.message_type) or {}


def _handling(
    flow: Flow | None, plan: LevelPlan | None, shared: tuple[str, ...]
) -> tuple[str, ...]:
    if flow is None or plan is None:
        return ()
    key = ("handling", shared)
    cached: tuple[str, ...] | None = plan.memo.get(key)
    if cached is None:
        cached = plan.memo[key] = _handling_of(flow, plan, shared)
    return cached


def _handling_of(flow: Flow, plan: LevelPlan, shared: tuple[str, ...]) -> tuple[str, ...]:
    out: set[str] = set()
    obligations = flow.obligations
    if obligations.must_not_inform is not None:
        out.update(f"must_not_inform:{who}" for who in obligations.must_not_inform.who)
    if obligations.no_onward_disclosure:
        out.add("no_onward_disclosure")
    for path in shared:
        for label in plan.labels[path].handling:
            if label.startswith("must_not_disclose_to:"):
                out.add("must_not_inform:" + label.split(":", 1)[1])
            elif label == "originator_control":
                out.add("originator_control")
    return tuple(sorted(out))


def _copy_basis(basis: dict[str, Any]) -> dict[str, Any]:
    return {
        agency: {k: list(v) if isinstance(v, list) else v for k, v in codes.items()}
        for agency, codes in basis.items()
    }


def _lawful_basis(isa: Isa, flow: Flow | None, sender: str, recipient: str) -> dict[str, Any]:
    purpose = isa.purpose(flow.purpose) if flow is not None else None
    if purpose is None:
        return {}
    key = ("basis", purpose.id, sender, recipient)
    if key not in isa._memo:
        isa._memo[key] = {
            agency: purpose.lawful_basis[agency].model_dump(mode="json", exclude_defaults=True)
            for agency in (sender, recipient)
            if agency in purpose.lawful_basis
        }
    result: dict[str, Any] = isa._memo[key]
    return result


def evaluate(
    isa: Isa,
    *,
    sender: str,
    recipient: str,
    purpose: str,
    message_type: str,
    referral: Any,
    now: datetime,
) -> Decision:
    """Decide whether and what ``sender`` may share with ``recipient`` (steps 1-7 above).

    ``referral`` is a ``federation.referrals`` referral or a :class:`ReferralFacts`. Raises
    ``PayloadInvalid`` if the payload has a field the catalogue does not know.
    """
    facts = ReferralFacts.of(referral)
    ctx = EvalContext(isa, sender, recipient, purpose, message_type, facts, now)
    outcome, flow, gate_reasons = gates(ctx)
    plan = None
    if outcome != "DENY" and flow is not None:
        plan = plan_for(isa, flow, message_type, facts.risk_level, sender)
    return build_decision(ctx, outcome, flow, gate_reasons, plan, _fields(ctx, plan))


def build_decision(
    ctx: EvalContext,
    outcome: Outcome,
    flow: Flow | None,
    gate_reasons: tuple[str, ...],
    plan: LevelPlan | None,
    fields: _FieldResult,
) -> Decision:
    isa, sender, recipient, facts = ctx.isa, ctx.sender, ctx.recipient, ctx.facts
    purpose, message_type, now = ctx.purpose, ctx.message_type, ctx.now
    shared, withheld, transforms = fields
    reasons = list(gate_reasons)
    if plan is not None:
        reasons.append(f"{len(shared)} fields shared, {len(withheld)} withheld.")
    return Decision.model_construct(
        outcome=outcome,
        isa_id=isa.id,
        isa_version=isa.version,
        isa_sha256=isa.sha256,
        flow_id=flow.id if flow is not None else None,
        sender=sender,
        recipient=recipient,
        purpose=purpose,
        message_type=message_type,
        risk_level=facts.risk_level,
        decided_at=now,
        shared_fields=shared,
        withheld_fields=withheld,
        transforms=dict(transforms),  # copies: the memo's values must never be mutated
        obligations=flow.obligations if flow is not None and plan is not None else None,
        lawful_basis=_copy_basis(_lawful_basis(isa, flow, sender, recipient)),
        handling=_handling(flow, plan, shared),
        reasons=tuple(reasons),
    )
