"""Retention: each ISA's obligation enforced by the housekeeper, under an injected clock.

Rules:
1. Inbox payloads are crypto-shredded (``purge_inbox_payload``: the data key is deleted) once
   the retention period of the flow they arrived under has passed. The flow is the one of the
   delivery's ISA whose sender, recipient (this agency), purpose and message type match; its
   ``obligations.retain`` gives ``period`` (ISO 8601 ``PnYnMnWnD``) and ``from``.
2. The period counts from the event ``from`` names: ``received`` from receipt; ``case_closed``
   from the latest case closure, ``last_activity`` from the latest activity, that the case
   system reported on the delivery (``POST /v1/inbox/{id}/events``). Until it reports one, the
   period counts from receipt, which is never later than either: the agent then never keeps
   data longer than the ISA allows (it may shred earlier, which the recipient's case system,
   holding its own copy, is unaffected by). The purge entry says what the period counted from.
9. A delivery under legal hold (``PUT /v1/inbox/{id}/hold``) is never shredded, however long
   overdue; it stays unsettled, so the pass after its release shreds it if it is due. The
   store checks the hold in the shredding transaction itself (``erase_inbox_payload``): a hold
   placed during a pass is honoured. Erasure on request (``agent.service``) goes through the
   same check.
3. A delivery whose flow states no retention keeps its payload (nothing to enforce) unless a
   ``default_period`` is configured.
4. Outbox envelope frames are deleted as soon as the delivery receipt has arrived (nothing will
   ever re-send them); status, history and the receipt stay. After a burst this is thousands
   of rows: they go in batches of ``FRAME_BATCH`` with a pause between, so submits wait for one
   short batch at most and the disk is not saturated by the pass.
5. Audit entries older than ``audit_keep`` are removed behind a signed anchor checkpoint.
6. Every purge is itself an audit entry (one per message; one for each audit pruning).
7. A pass is cheap when nothing is due: it scans the inbox in cursor (arrival) order from a
   floor below which every delivery is settled (shredded, or under no obligation), and stops at
   the first delivery younger than the shortest retention period in force.
8. A delivery keeps the obligation of the ISA version it cites while that version is held
   (then that of the version in force). The ISAs are read at each pass (they arrive with the
   manifest, ``agent.trust`` rule 8); when they change, the floor and the shortest period are
   worked out again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from agent.audit import AuditEvent, AuditSink, message_event
from agent.errors import LegalHold
from agent.store import InboxItem
from federation.canonical import format_time
from federation.isa import IsaRegistry, Retain
from federation.periods import PERIOD_PATTERN, add_period

__all__ = ["Retention", "RetentionReport", "add_period", "counted_from", "retain_for"]

_PERIOD = PERIOD_PATTERN
PAGE = 500
FRAME_BATCH = 64  # envelopes per store transaction and audit commit: a few ms each
FRAME_PAUSE = 0.05  # seconds between batches: up to ~1,300 purges/s, the writer stays free


class RetentionStore(Protocol):
    async def inbox_page(
        self, after_cursor: int, limit: int, *, unacked_only: bool = False
    ) -> Sequence[InboxItem]: ...

    async def erase_inbox_payload(self, message_id: str, now: datetime) -> bool: ...

    async def purge_delivered_frames(self, now: datetime, limit: int = ...) -> Sequence[str]: ...


def retain_for(registry: IsaRegistry, agency: str, header: dict[str, Any]) -> Retain | None:
    """The retention obligation of the flow a delivery arrived under (rules 1 and 8), if any."""
    isa_ref = header.get("isa")
    if not isinstance(isa_ref, dict):
        return None
    isa_id = str(isa_ref.get("id", ""))
    isa = registry.version(isa_id, str(isa_ref.get("sha256", ""))) or registry.get(isa_id)
    if isa is None:
        return None
    for flow in isa.doc.flows:
        if (
            header.get("from") in flow.sender
            and agency in flow.to
            and header.get("purpose") == flow.purpose
            and header.get("type") in flow.message_types
        ):
            return flow.obligations.retain
    return None


def counted_from(item: InboxItem, retain: Retain | None) -> tuple[datetime, str]:
    """Rule 2: when ``item``'s retention period starts, and what that is, in words."""
    start = retain.start if retain is not None else "received"
    reported = {
        "case_closed": (item.case_closed_at, "the case closure reported at"),
        "last_activity": (item.last_activity_at, "the last activity reported at"),
    }
    at, words = reported.get(start, (None, ""))
    if at is None or at <= item.received_at:
        return item.received_at, "receipt"
    return at, f"{words} {format_time(at)}"


def _lower_bound(period: str) -> timedelta:
    """A period's shortest possible length (months of 28 days, years of 365)."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"not an ISO 8601 period: {period!r}")
    years, months, weeks, days = (int(g or 0) for g in match.groups())
    return timedelta(days=365 * years + 28 * months + 7 * weeks + days)


def _shortest_period(registry: IsaRegistry, default: str | None) -> timedelta | None:
    periods = [default] if default is not None else []
    for isa in registry.held():
        for flow in isa.doc.flows:
            if flow.obligations.retain is not None:
                periods.append(flow.obligations.retain.period)
    return min((_lower_bound(p) for p in periods), default=None)


@dataclass
class RetentionReport:
    inbox_purged: list[str] = field(default_factory=list)
    frames_purged: list[str] = field(default_factory=list)
    audit_removed: int = 0


class Retention:
    """One pass of every retention rule at ``now``; the housekeeper calls ``run``."""

    def __init__(
        self,
        store: RetentionStore,
        audit: AuditSink,
        isas: IsaRegistry | Callable[[datetime], IsaRegistry],
        *,
        agency: str,
        audit_keep: timedelta | None = None,
        default_period: str | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self._isas = isas if callable(isas) else (lambda _now: isas)
        self.registry = isas if isinstance(isas, IsaRegistry) else IsaRegistry()
        self.agency = agency
        self.audit_keep = audit_keep
        self.default_period = default_period
        self._shortest = _shortest_period(self.registry, default_period)
        self._floor = 0  # every delivery at or below this cursor is settled (rule 7)

    def _read_isas(self, now: datetime) -> None:
        """Rule 8: the ISAs of this pass; another set starts the scan over."""
        registry = self._isas(now)
        if registry is not self.registry:
            self.registry, self._floor = registry, 0
            self._shortest = _shortest_period(registry, self.default_period)

    async def run(self, now: datetime) -> RetentionReport:
        self._read_isas(now)
        report = RetentionReport()
        report.inbox_purged = await self._inbox(now)
        report.frames_purged = await self._frames(now)
        audit = self.audit
        if self.audit_keep is not None and hasattr(audit, "prune_before"):
            report.audit_removed = await audit.prune_before(now - self.audit_keep, now)
        return report

    def due_at(self, item: InboxItem) -> datetime | None:
        """When ``item``'s payload must be shredded (rules 1-3), or None to keep it."""
        retain = retain_for(self.registry, self.agency, item.header)
        period = retain.period if retain is not None else self.default_period
        if period is None:
            return None
        return add_period(counted_from(item, retain)[0], period)

    async def _inbox(self, now: datetime) -> list[str]:
        """Rule 7: scan from the floor, stop at the first delivery too young to be due."""
        if self._shortest is None:
            return []
        horizon, cursor, contiguous = now - self._shortest, self._floor, True
        purged: list[str] = []
        while True:
            page = await self.store.inbox_page(cursor, PAGE)
            for item in page:
                if item.received_at > horizon:
                    return purged
                due = None if item.purged or item.held else self.due_at(item)
                shredded = due is not None and due <= now and await self._shred(item, due, now)
                if shredded:
                    purged.append(item.id)
                # shredded now or before, or never due; a held one never (rule 9)
                settled = not item.held and (due is None or shredded)
                contiguous = contiguous and settled
                if contiguous:
                    self._floor = item.cursor
            if len(page) < PAGE:
                return purged
            cursor = page[-1].cursor

    async def _shred(self, item: InboxItem, due: datetime, now: datetime) -> bool:
        """Shred ``item``'s payload and audit it; False when a hold came first (rule 9)."""
        try:
            await self.store.erase_inbox_payload(item.id, now)
        except LegalHold:
            return False
        retain = retain_for(self.registry, self.agency, item.header)
        await self._record(item, due, counted_from(item, retain)[1], now)
        return True

    async def _record(self, item: InboxItem, due: datetime, since: str, now: datetime) -> None:
        header = item.header
        isa = header.get("isa") if isinstance(header.get("isa"), dict) else {}
        assert isinstance(isa, dict)
        event = AuditEvent(  # the header as stored, however old: no field of it is required
            "purge",
            "agent",
            item.id,
            item.sender,
            isa_id=isa.get("id"),
            isa_version=isa.get("version"),
            purpose=header.get("purpose"),
            message_type=header.get("type"),
            risk=header.get("risk"),
            outcome="payload_shredded",
            detail=f"retention ended {due.isoformat()} (counted from {since})",
        )
        await self.audit.record(event, now)

    async def _frames(self, now: datetime) -> list[str]:
        """Rule 4, in batches of ``FRAME_BATCH``: one store transaction and one audit commit
        each, so that submits and deliveries queued meanwhile wait for one batch at most."""
        purged: list[str] = []
        while True:
            ids = list(await self.store.purge_delivered_frames(now, limit=FRAME_BATCH))
            detail = "delivery receipt received; envelope no longer needed"
            events = [
                message_event("purge", "agent", i, outcome="outbox_envelope_deleted", detail=detail)
                for i in ids
            ]
            # concurrent records share one group commit (AuditLog queues them in this order)
            await asyncio.gather(*(self.audit.record(event, now) for event in events))
            purged += ids
            if len(ids) < FRAME_BATCH:
                return purged
            await asyncio.sleep(FRAME_PAUSE)
