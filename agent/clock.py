"""The agent's one seam for the time of day.

Rule: product code never calls ``datetime.now``; it takes a ``Clock`` (or a ``now`` value) from
its caller. The command line and ``isa-agent run`` pass ``utcnow``; tests pass a fixed or
stepped clock, so no outcome depends on the date the suite runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utcnow"]

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The system's current time in UTC."""
    return datetime.now(UTC)
