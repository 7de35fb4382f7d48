"""Compiling one flow at one risk level into a plan: for every catalogue path, released or why not.

This module performs no I/O.

Rules (applied in this order to each catalogue path of the message type; the first that applies
decides, so a denial always beats an allow list):
1. ``never_share``: the catalogue labels it ``never_share`` or it matches the ISA's global
   ``never_share`` list. No flow can release it.
2. ``deny_field``: it matches the flow's ``deny_fields``.
3. ``not_in_allow_list``: the risk level's decision is ``deny``, or no field set / field of that
   level names it.
4. ``no_special_category_condition`` / ``no_criminal_offence_condition``: it is labelled
   special category / criminal offence and the sender's lawful basis for the purpose lacks the
   matching condition (Art 9 + Schedule 1, or Schedule 8 under Part 3; Art 10 / Schedule 1 Part 3).
5. ``transform_drop``: its transform is ``drop``.
Otherwise it is released, with its transform (a level's transform overrides the flow's).

Plans are memoised on the :class:`Isa` (keyed by flow, type, level and sender).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from federation.errors import IsaRelayError
from federation.isa.catalogue import FieldLabels, field_labels, match_paths
from federation.isa.model import Flow, Isa, LevelRule, RiskLevel, TransformName

__all__ = [
    "LEAF",
    "LIST",
    "OBJECT",
    "REASONS",
    "LevelPlan",
    "PathShape",
    "allow_patterns",
    "expand",
    "labels_for",
    "never_share_paths",
    "path_shape",
    "plan_for",
    "transforms_for",
]

REASONS: Mapping[str, str] = {
    "never_share": "this information is never shared under any agreement",
    "deny_field": "this agreement expressly withholds this information",
    "not_in_allow_list": "not needed for this purpose at this risk level",
    "no_special_category_condition": (
        "sensitive (special category) information, and the sender has no legal condition "
        "recorded for sharing it"
    ),
    "no_criminal_offence_condition": (
        "criminal-offence information, and the sender has no legal condition recorded for it"
    ),
    "transform_drop": "the agreement removes this information before sending",
    "denied": "nothing is shared: the referral is not permitted",
}


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """What one flow releases at one risk level for one sender and message type."""

    decision: str
    released: frozenset[str]
    withheld: Mapping[str, str]  # path -> reason code
    transforms: Mapping[str, TransformName]  # released path -> transform other than keep
    labels: Mapping[str, FieldLabels]
    shape: PathShape
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


LEAF, OBJECT, LIST = 0, 1, 2
PathShape = dict[str, tuple[Any, ...]]
"""Catalogue paths as a tree: key -> (LEAF, path) | (OBJECT or LIST, sub-shape, flat), where
``flat`` maps each child key to its path when every child is a leaf (a fast path), else None."""


def path_shape(paths: Iterable[str]) -> PathShape:
    root: PathShape = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for part in parts[:-1]:
            kind = LIST if part.endswith("[]") else OBJECT
            key = part[:-2] if kind == LIST else part
            node = node.setdefault(key, (kind, {}))[1]
        node[parts[-1]] = (LEAF, path)
    return _mark_flat(root)


def _mark_flat(shape: PathShape) -> PathShape:
    """Give each object node a third item: {key: path} when all its children are leaves."""
    for key, (kind, arg) in list(shape.items()):
        if kind != LEAF:
            _mark_flat(arg)
            leaves = all(v[0] == LEAF for v in arg.values())
            shape[key] = (kind, arg, {k: v[1] for k, v in arg.items()} if leaves else None)
    return shape


def labels_for(isa: Isa, message_type: str) -> dict[str, FieldLabels] | None:
    """The catalogue of ``message_type`` as labels, or None if the catalogue does not know it."""
    key = ("labels", message_type)
    if key not in isa._memo:
        try:
            entries = isa.catalogue(message_type)
        except (LookupError, ValueError, IsaRelayError):
            entries = None
        isa._memo[key] = (
            None if entries is None else {p: field_labels(p, i) for p, i in entries.items()}
        )
    result: dict[str, FieldLabels] | None = isa._memo[key]
    return result


def expand(patterns: Iterable[str], paths: Iterable[str]) -> set[str]:
    pool = list(paths)
    found: set[str] = set()
    for pattern in patterns:
        found.update(match_paths(pattern, pool))
    return found


def allow_patterns(isa: Isa, rule: LevelRule | None) -> list[str]:
    """Every pattern a level rule names: its field sets' members, then its own fields."""
    if rule is None or rule.decision == "deny":
        return []
    patterns: list[str] = []
    for name in rule.field_sets:
        patterns.extend(isa.doc.field_sets.get(name, []))
    return patterns + list(rule.fields)


def never_share_paths(isa: Isa, labels: Mapping[str, FieldLabels]) -> set[str]:
    return {p for p, lab in labels.items() if lab.never_share} | expand(isa.doc.never_share, labels)


def transforms_for(
    flow: Flow, rule: LevelRule | None, paths: Iterable[str]
) -> dict[str, TransformName]:
    pool = list(paths)
    result: dict[str, TransformName] = {}
    for source in (flow.transforms, rule.transforms if rule else {}):
        for pattern, transform in source.items():
            for path in match_paths(pattern, pool):
                result[path] = transform
    return result


def _sender_conditions(isa: Isa, flow: Flow, sender: str) -> tuple[bool, bool]:
    purpose = isa.purpose(flow.purpose)
    basis = purpose.lawful_basis.get(sender) if purpose else None
    if basis is None:
        return False, False
    return basis.special_category_condition(), basis.criminal_offence_condition()


def _compile(isa: Isa, flow: Flow, message_type: str, level: RiskLevel, sender: str) -> LevelPlan:
    labels = labels_for(isa, message_type) or {}
    rule = flow.by_risk_level.rule(level)
    never = never_share_paths(isa, labels)
    denied = expand(flow.deny_fields, labels)
    allowed = expand(allow_patterns(isa, rule), labels)
    transforms = transforms_for(flow, rule, labels)
    has_sc, has_cod = _sender_conditions(isa, flow, sender)
    withheld: dict[str, str] = {}
    for path, lab in labels.items():
        if path in never:
            withheld[path] = "never_share"
        elif path in denied:
            withheld[path] = "deny_field"
        elif path not in allowed:
            withheld[path] = "not_in_allow_list"
        elif lab.special_category and not has_sc:
            withheld[path] = "no_special_category_condition"
        elif lab.criminal_offence and not has_cod:
            withheld[path] = "no_criminal_offence_condition"
        elif transforms.get(path) == "drop":
            withheld[path] = "transform_drop"
    released = frozenset(labels) - frozenset(withheld)
    kept = {p: t for p, t in transforms.items() if p in released and t != "keep"}
    decision = rule.decision if rule else "deny"
    return LevelPlan(decision, released, withheld, kept, labels, path_shape(labels))


def plan_for(isa: Isa, flow: Flow, message_type: str, level: RiskLevel, sender: str) -> LevelPlan:
    """The (memoised) plan for one flow, message type, risk level and sender."""
    key = ("plan", flow.id, message_type, level, sender)
    plan = isa._memo.get(key)
    if plan is None:
        plan = isa._memo[key] = _compile(isa, flow, message_type, level, sender)
    result: LevelPlan = plan
    return result
