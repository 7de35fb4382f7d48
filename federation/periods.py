"""ISO 8601 periods of years, months, weeks and days (``P2Y``, ``P1Y6M``, ``P2D``), as the ISA
language writes its durations (``Retain.period``, a review's ``within``).

This module performs no I/O and reads no clock (``start`` is an argument).

Rules:
1. Months and years are calendar months: ``add_period(31 January, "P1M")`` is the last day of
   February (the day is clamped), then weeks and days are added.
2. A text that is not such a period (or the empty ``P``) is a ``ValueError``.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from typing import Final

__all__ = ["PERIOD_PATTERN", "add_period"]

PERIOD_PATTERN: Final = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


def add_period(start: datetime, period: str) -> datetime:
    """``start`` plus an ISO 8601 ``PnYnMnWnD`` period (calendar months; day clamped)."""
    match = PERIOD_PATTERN.match(period)
    if match is None or period == "P":
        raise ValueError(f"not an ISO 8601 period of years, months, weeks and days: {period!r}")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    total = start.month - 1 + months + 12 * years
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day) + timedelta(weeks=weeks, days=days)
