"""Manifest changes in the audit log.

Rules:
1. Every manifest the agent accepts is an entry (``manifest_change``): its serial as the outcome,
   what changed (agencies, keys, ISAs, revocations) as the detail, at most 2,000 characters.
2. The trust holder calls listeners synchronously; the record is written by a task kept here
   until done, and ``drain`` awaits the outstanding ones (on shutdown).
3. Every manifest the agent refuses (once per distinct offer, ``agent.trust`` rule 8) is an
   entry too: ``manifest_change`` with outcome ``refused``, the reason and the serial kept in
   force as the detail (an ISA document not matching its pin names the ISA and version).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from agent.audit.events import AuditEvent, AuditSink
from federation.manifest import Manifest, diff_manifests

__all__ = ["ManifestAuditor"]


class ManifestAuditor:
    """A ``TrustHolder.on_change`` listener that records each manifest change (rules 1, 2)."""

    def __init__(self, audit: AuditSink, clock: Callable[[], datetime]) -> None:
        self._audit = audit
        self._clock = clock
        self._tasks: set[asyncio.Future[None]] = set()

    def __call__(self, old: Manifest | None, new: Manifest) -> None:
        changes = (
            ["initial manifest"] if old is None else diff_manifests(old.document, new.document)
        )
        detail = "; ".join(changes)[:2000]
        event = AuditEvent(
            "manifest_change", "agent", outcome=f"serial {new.serial}", detail=detail
        )
        self._record(event)

    def refused(self, message: str, held: int) -> None:
        """Rule 3: a ``TrustHolder.on_refused`` listener."""
        kept = f"serial {held} stays in force" if held else "no manifest is held"
        event = AuditEvent("manifest_change", "agent", outcome="refused",
                           detail=f"{message}; {kept}"[:2000])  # fmt: skip
        self._record(event)

    def _record(self, event: AuditEvent) -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(self._audit.record(event, self._clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
