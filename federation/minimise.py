"""Applying a :class:`~federation.isa_eval.Decision` to a payload: keep, drop, generalise.

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
5. Age bands: 0-15, 16-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Final

from federation.isa_eval import Decision

__all__ = [
    "AGE_BANDS",
    "age_band",
    "is_transformed",
    "minimise",
    "postcode_district",
    "transform_value",
    "year_of",
]

AGE_BANDS: Final = ("0-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_BAND_FLOORS: Final = (0, 16, 18, 25, 35, 45, 55, 65)
_POSTCODE = re.compile(r"\b([A-Z]{1,2}[0-9][0-9A-Z]?)\s*[0-9][A-Z]{2}\b")
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
_DROP: Final = object()


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def age_band(value: Any, today: date) -> str | None:
    """The age band of a date of birth as of ``today`` (a band passes through)."""
    if isinstance(value, str) and value in AGE_BANDS:
        return value
    born = _as_date(value)
    if born is None or born > today:
        return None
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    index = max(i for i, floor in enumerate(_BAND_FLOORS) if age >= floor)
    return AGE_BANDS[index]


def postcode_district(value: Any) -> str | None:
    """``"12 Synthetic Row, QX1 4ZZ"`` or ``"QX1 4ZZ"`` -> ``"QX1"`` (a district passes through)."""
    if not isinstance(value, str):
        return None
    text = value.strip().upper()
    if _DISTRICT.match(text):
        return text
    matches = _POSTCODE.findall(text)
    return matches[-1] if matches else None


def year_of(value: Any) -> int | None:
    """A date, date-time or ISO string -> its year (a year passes through)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    moment = _as_date(value)
    return moment.year if moment is not None else None


def transform_value(transform: str, value: Any, today: date) -> Any:
    """Apply one transform; None when the value cannot be read (the caller drops it)."""
    if transform == "age_band":
        return age_band(value, today)
    if transform == "postcode_district":
        return postcode_district(value)
    if transform == "year":
        return year_of(value)
    if transform == "drop":
        return None
    return value


def is_transformed(transform: str, value: Any) -> bool:
    """Is ``value`` already in the form ``transform`` produces? (for a recipient's check)"""
    if transform == "age_band":
        return isinstance(value, str) and value in AGE_BANDS
    if transform == "postcode_district":
        return isinstance(value, str) and bool(_DISTRICT.match(value))
    if transform == "year":
        return isinstance(value, int) and not isinstance(value, bool)
    return transform == "keep"


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
