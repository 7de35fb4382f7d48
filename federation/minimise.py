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
from datetime import date, datetime
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


def _prefixes(paths: tuple[str, ...]) -> frozenset[str]:
    out: set[str] = set()
    for path in paths:
        parts = path.split(".")
        out.update(".".join(parts[:i]) + "." for i in range(1, len(parts)))
    return frozenset(out)


def _walk(
    obj: Mapping[str, Any],
    prefix: str,
    keep: frozenset[str],
    inner: frozenset[str],
    transforms: Mapping[str, str],
    today: date,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = prefix + key
        if path in keep:
            transform = transforms.get(path)
            if transform is not None:
                value = transform_value(transform, value, today)
            if value is not None:
                out[key] = value
        elif isinstance(value, Mapping) and path + "." in inner:
            sub = _walk(value, path + ".", keep, inner, transforms, today)
            if sub:
                out[key] = sub
        elif isinstance(value, list) and path + "[]." in inner:
            items = [
                _walk(item, path + "[].", keep, inner, transforms, today)
                for item in value
                if isinstance(item, Mapping)
            ]
            if any(items):
                out[key] = items
    return out


def minimise(payload: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
    """The part of ``payload`` that ``decision`` releases, generalised as it says."""
    if decision.outcome == "DENY" or not decision.shared_fields:
        return {}
    keep = frozenset(decision.shared_fields)
    inner = _prefixes(decision.shared_fields)
    today = decision.decided_at.date()
    return _walk(payload, "", keep, inner, decision.transforms, today)
