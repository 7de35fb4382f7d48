"""The value transforms an ISA may name: generalise a value instead of sharing it as it is.

This module performs no I/O and reads no clock: an age band is computed as of a ``today`` the
caller passes (the decision's date).

Rules:
1. A transform never adds information: its output is the input or a coarser form of it.
2. A value a transform cannot read yields ``None`` (the caller drops it), never the input.
3. ``is_transformed`` tells a recipient whether a value is already in the coarse form.
4. Age bands: 0-15, 16-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Final

__all__ = [
    "AGE_BANDS",
    "age_band",
    "is_transformed",
    "postcode_district",
    "transform_value",
    "year_of",
]

AGE_BANDS: Final = ("0-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
_BAND_FLOORS: Final = (0, 16, 18, 25, 35, 45, 55, 65)
_POSTCODE = re.compile(r"\b([A-Z]{1,2}[0-9][0-9A-Z]?)\s*[0-9][A-Z]{2}\b")
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")


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
