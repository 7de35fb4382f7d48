"""The operator tools' one seam for the time of day.

Rule: product code never calls ``datetime.now``; ``isa-broker``'s ``main`` takes a ``Clock``
(``utcnow`` by default) and hands it to each command as ``args.clock``; tests pass a fixed one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The system's current time in UTC."""
    return datetime.now(UTC)
