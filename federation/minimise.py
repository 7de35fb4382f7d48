"""Applying a :class:`~federation.isa.evaluation.Decision` to a payload: keep, drop, generalise.

This module performs no I/O and reads no clock: an age band is computed as of the decision's
``decided_at`` date.

Rules:
1. Deny by default: a path is kept only if the decision shares it; everything else is dropped,
   including paths the decision never saw. A DENY decision yields ``{}``.
2. Never adds a field or a value: the output's paths are a subset of the input's, and each value
   is the input's value or a generalisation of it (an age band, a postcode district, a year).
3. Idempotent: a value already in its generalised form is left as it is; a value a transform
   cannot read is dropped rather than passed on in full.
4. Nested objects and lists of objects are walked (``children[].date_of_birth``); an object or
   list that ends up empty is left out.
5. The transforms themselves are :mod:`federation.isa.transforms` (the ISA language names them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date
from functools import lru_cache
from typing import Any, Final

from federation.isa import Decision, transform_value

__all__ = ["minimise"]

_DROP: Final = object()


@dataclass(frozen=True, slots=True)
class _Shape:
    """The released paths below one object, split by what to do with each key."""

    plain: frozenset[str]  # leaves kept as they are
    transformed: dict[str, str]  # leaf -> transform
    objects: dict[str, _Shape]
    lists: dict[str, _Shape]
    copyable: bool  # only plain leaves below: copy the object in one comprehension


def _build(paths: list[tuple[list[str], str | None]]) -> _Shape:
    plain: set[str] = set()
    transformed: dict[str, str] = {}
    children: dict[tuple[bool, str], list[tuple[list[str], str | None]]] = {}
    for parts, transform in paths:
        head = parts[0]
        if len(parts) == 1 and transform is None:
            plain.add(head)
        elif len(parts) == 1:
            transformed[head] = transform  # type: ignore[assignment]
        else:
            is_list = head.endswith("[]")
            key = (is_list, head[:-2] if is_list else head)
            children.setdefault(key, []).append((parts[1:], transform))
    objects = {k: _build(v) for (is_list, k), v in children.items() if not is_list}
    lists = {k: _build(v) for (is_list, k), v in children.items() if is_list}
    copyable = not (transformed or objects or lists)
    return _Shape(frozenset(plain), transformed, objects, lists, copyable)


@lru_cache(maxsize=256)
def _shape(shared: tuple[str, ...], transforms: tuple[tuple[str, str], ...]) -> _Shape:
    by_path = dict(transforms)
    return _build([(path.split("."), by_path.get(path)) for path in shared])


def _apply(obj: Mapping[str, Any], shape: _Shape, today: date) -> dict[str, Any]:
    plain = shape.plain
    out = {k: v for k, v in obj.items() if k in plain and v is not None}
    for key, transform in shape.transformed.items():
        value = obj.get(key)
        if value is not None:
            value = transform_value(transform, value, today)
            if value is not None:
                out[key] = value
    for key, sub_shape in shape.objects.items():
        value = obj.get(key)
        if type(value) is dict or isinstance(value, Mapping):
            if sub_shape.copyable and value.keys() <= sub_shape.plain:
                if None in value.values():
                    sub = {k: v for k, v in value.items() if v is not None}
                else:
                    sub = dict(value)
            else:
                sub = _apply(value, sub_shape, today)
            if sub:
                out[key] = sub
    for key, sub_shape in shape.lists.items():
        value = obj.get(key)
        if isinstance(value, list):
            items = [_apply(i, sub_shape, today) for i in value if isinstance(i, Mapping)]
            if any(items):
                out[key] = items
    return out


def minimise(payload: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The part of ``payload`` that ``decision`` releases, generalised as it says."""
    if decision.outcome == "DENY" or not decision.shared_fields:
        return {}
    shape = _shape(decision.shared_fields, tuple(sorted(decision.transforms.items())))
    moment = decision.decided_at
    today = (moment.astimezone(UTC) if moment.tzinfo is not None else moment).date()
    return _apply(payload, shape, today)
