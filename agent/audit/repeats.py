"""Repeated events in the audit log: visible to a reviewer, but never a flood of entries.

A replayed envelope, a refused frame, a second acknowledgement or a re-read of the same
delivery must show in the audit log, yet a sender or client repeating it thousands of times must
not fill the disk or bury the real entries (a subject-access search returned 1,570 entries
about one person when every repeat wrote its own).

Rules:
1. Events are grouped by a ``key`` (e.g. ``("replay", sender)``, ``("ack", client, id)``). A
   window opens at a key's first event and stays open for ``window``.
2. ``admit``: the first event of a key in a window is admitted (the caller records it as usual);
   later ones in the same window are only counted. ``count``: only counted, for events whose
   first occurrence was audited elsewhere (the first acknowledgement, which the store knows).
3. When a window closes (``flush(now)`` on every housekeeping tick, a later event of the key
   after the window, eviction, or ``close`` on shutdown) and it counted anything, ONE entry is
   written: action ``repeat``, the first event's actor, message, counterparty and outcome, and
   ``detail`` = ``"<count> more <what> between <first> and <last>"``.
4. Memory is bounded: at most ``max_keys`` windows are open; opening one more closes the oldest
   (its summary is written). Entries therefore grow with keys x windows, never with a flood.
5. Time comes in as ``at``/``now`` (the agent's clock); this module reads no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from agent.audit.events import AuditEvent, AuditSink
from federation.canonical import format_time

__all__ = ["DEFAULT_WINDOW", "MAX_KEYS", "RepeatAudit"]

DEFAULT_WINDOW = timedelta(minutes=10)
MAX_KEYS = 4096
Key = tuple[str, ...]


@dataclass(slots=True)
class _Window:
    event: AuditEvent  # the first event of the window, for the summary's who and what
    opened: datetime
    count: int = 0  # events counted, not recorded
    first: datetime | None = None  # the first and last counted event
    last: datetime | None = None


class RepeatAudit:
    """Windows of repeated events over an :class:`AuditSink` (rules 1-5)."""

    def __init__(
        self, sink: AuditSink, *, window: timedelta = DEFAULT_WINDOW, max_keys: int = MAX_KEYS
    ) -> None:
        self._sink = sink
        self._window = window
        self._max = max(1, max_keys)
        self._open: OrderedDict[Key, _Window] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    async def admit(self, key: Key, event: AuditEvent, at: datetime) -> bool:
        """True for the first event of ``key`` in its window (record it); else count it."""
        window = await self._current(key, at)
        if window is None:
            await self._start(key, _Window(event, at))
            return True
        self._tally(window, at)
        return False

    async def count(self, key: Key, event: AuditEvent, at: datetime) -> None:
        """Count ``event`` without recording it (its first occurrence was audited already)."""
        window = await self._current(key, at)
        if window is None:
            window = _Window(event, at)
            await self._start(key, window)
        self._tally(window, at)

    async def flush(self, now: datetime) -> int:
        """Close every window older than the window length; returns the summaries written."""
        expired = [k for k, w in self._open.items() if now - w.opened >= self._window]
        written = 0
        for key in expired:
            written += await self._close(key, now)
        return written

    async def close(self, now: datetime) -> int:
        """Close every window (shutdown): nothing counted is lost."""
        written = 0
        for key in list(self._open):
            written += await self._close(key, now)
        return written

    async def _current(self, key: Key, at: datetime) -> _Window | None:
        window = self._open.get(key)
        if window is not None and at - window.opened >= self._window:
            await self._close(key, at)
            return None
        return window

    async def _start(self, key: Key, window: _Window) -> None:
        self._open[key] = window
        while len(self._open) > self._max:
            await self._close(next(iter(self._open)), window.opened)

    @staticmethod
    def _tally(window: _Window, at: datetime) -> None:
        window.count += 1
        window.first = window.first or at
        window.last = at

    async def _close(self, key: Key, now: datetime) -> int:
        window = self._open.pop(key, None)
        if window is None or window.count == 0:
            return 0
        await self._sink.record(_summary(window), now)
        return 1


def _summary(window: _Window) -> AuditEvent:
    event = window.event
    what = event.action if event.outcome is None else f"{event.action} ({event.outcome})"
    first, last = window.first or window.opened, window.last or window.opened
    detail = f"{window.count} more {what} between {format_time(first)} and {format_time(last)}"
    return replace(
        event,
        action="repeat",
        outcome=event.outcome or event.action,
        detail=detail,
        fields_shared=(),
        fields_withheld=(),
        subject_source=None,
    )
