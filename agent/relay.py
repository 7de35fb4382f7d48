"""Background work: publish the outbox, expire overdue messages, retention, rotate and destroy keys.

Rules:
1. The relay publishes only what the outbox holds, oldest first, and marks a message ``sent``
   only after the broker confirmed it; a failed attempt is retried with exponential backoff
   (capped), never dropped. A restart resumes from the outbox: nothing lives only in memory.
2. A message past ``expires_at`` without a receipt becomes ``expired`` (the non-delivery report
   is its status and history entry, which the case system reads with GET /v1/messages/{id},
   and its ``expired`` status event, written by the store in the same commit).
5. Reviews have a timer too (``agent.reviews.watch_reviews``, every tick): overdue ones
   escalate, those held too long expire unsent.
3. Every loop waits on an event or a timer and is cancelled cleanly by the TaskGroup.
4. Dependencies are explicit and frozen (the store protocol, the publisher, the audit sink, the
   clock, metrics; the housekeeper's retention and key rotator); ``agent.runtime`` wires them.
   While the broker is away the publisher says so (``agent.publisher``): nothing is swapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from agent.audit import AuditSink, Flow, RepeatAudit, message_event, record_after_commit
from agent.clock import Clock
from agent.errors import StoreUnavailable, TransportError
from agent.keyrotation import KeyRotator
from agent.metrics import Metrics
from agent.publisher import Publisher
from agent.retention import Retention
from agent.reviews import watch_reviews
from agent.store import OutgoingMessage, Store
from federation.errors import IsaRelayError

__all__ = ["Housekeeper", "OutboxRelay", "backoff"]

log = logging.getLogger(__name__)

BATCH = 200
IDLE_POLL = 1.0


def backoff(attempts: int, *, base: float = 0.5, cap: float = 300.0) -> timedelta:
    """Exponential backoff after ``attempts`` failed tries: 0.5 s, 1 s, 2 s ... at most ``cap``."""
    return timedelta(seconds=min(cap, base * 2 ** min(attempts, 20)))


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRelay:
    """Publishes the outbox (rules 1, 3, 4); ``wakeup`` is set when a message is queued."""

    store: Store
    publisher: Publisher
    audit: AuditSink
    clock: Clock
    metrics: Metrics
    wakeup: asyncio.Event

    async def run(self) -> None:
        while True:
            published = await self.publish_due()
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), IDLE_POLL)
                self.wakeup.clear()

    async def publish_due(self) -> int:
        """Publish every due message once; returns how many the broker confirmed."""
        if not self.publisher.connected:
            return 0
        try:
            due = await self.store.due_outgoing(self.clock(), BATCH)
        except StoreUnavailable:
            return 0
        results = await asyncio.gather(*(self._publish_one(m) for m in due))
        return sum(results)

    async def _publish_one(self, message: OutgoingMessage) -> int:
        message_id, recipient, frame = message.id, message.recipient, message.frame
        attempts, header = message.attempts, message.header
        try:
            await self.publisher.publish(recipient, frame, message_id=message_id, kind="envelope")
        except TransportError as exc:
            self.metrics.inc("isa_agent_publish_failures_total")
            with contextlib.suppress(StoreUnavailable):
                await self.store.mark_attempt_failed(
                    message_id, self.clock(), backoff(attempts), exc.message[:200]
                )
            return 0
        try:
            await self.store.mark_sent(message_id, self.clock())
        except StoreUnavailable:
            log.error("published %s but could not record it; it may be sent again", message_id)
            return 0
        self.metrics.inc("isa_agent_published_total")
        event = message_event(
            "send", "agent", message_id, recipient, Flow.of_header(header), outcome="sent"
        )
        await record_after_commit(self.audit, self.clock(), event, log=log, done="sent")
        return 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Housekeeper:
    """Expires overdue messages, enforces retention and rotates and destroys keys, on a timer.

    Retention (``agent/retention.py``) and key rotation (``agent/keyrotation.py``) run at every
    tick under ``clock``; a failure of one is logged and retried at the next tick. The rotator
    owns the agent's keyring holder, so a rotation is in force for the receiver at once.
    """

    store: Store
    audit: AuditSink
    repeats: RepeatAudit
    retention: Retention
    rotator: KeyRotator
    clock: Clock
    metrics: Metrics
    interval: float = 30.0

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        await self._flush_repeats()
        await self._expire()
        await self._reviews()
        await self._retain()
        await self._rotate()

    async def _flush_repeats(self) -> None:
        """Write the summary entry of every closed window of repeated events."""
        try:
            await self.repeats.flush(self.clock())
        except StoreUnavailable:
            log.error("cannot write the audit log's repeat summaries; retrying next tick")

    async def _expire(self) -> None:
        try:
            expired = await self.store.expire_overdue(self.clock())
        except StoreUnavailable:
            return
        if expired:
            self.metrics.inc("isa_agent_expired_total", len(expired))
            log.warning("%d messages expired undelivered (non-delivery)", len(expired))

    async def _reviews(self) -> None:
        """Rule 5."""
        try:
            await watch_reviews(self.store, self.audit, self.metrics, self.clock())
        except StoreUnavailable:
            log.error("cannot move the review timer; retrying next tick")

    async def _retain(self) -> None:
        try:
            report = await self.retention.run(self.clock())
        except StoreUnavailable as exc:
            log.error("retention pass failed (%s); retrying next tick", exc.message)
            return
        if report.inbox_purged or report.frames_purged or report.audit_removed:
            log.info(
                "retention: %d payloads shredded, %d envelopes deleted, %d audit entries removed",
                len(report.inbox_purged), len(report.frames_purged), report.audit_removed,
            )  # fmt: skip

    async def _rotate(self) -> None:
        try:
            note = await self.rotator.tick(self.clock())
        except (IsaRelayError, OSError) as exc:
            log.error("key rotation failed (%s); retrying next tick", exc.__class__.__name__)
            return
        if note is not None:
            log.warning(
                "encryption key rotated to %s: data_dir/announcements/%s.json is posted to the"
                " manifest server (with a manifest file: give it to the operator)",
                note.kid, note.kid,
            )  # fmt: skip
