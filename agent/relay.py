"""Background work: publish the outbox, expire overdue messages, retention, rotate and destroy keys.

Rules:
1. The relay publishes only what the outbox holds, oldest first, and marks a message ``sent``
   only after the broker confirmed it; a failed attempt is retried with exponential backoff
   (capped), never dropped. A restart resumes from the outbox: nothing lives only in memory.
2. A message past ``expires_at`` without a receipt becomes ``expired`` (the non-delivery report
   is its status and history entry, which the case system reads with GET /v1/messages/{id}).
3. Every loop waits on an event or a timer and is cancelled cleanly by the TaskGroup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from agent.audit import Flow, message_event, record_after_commit
from agent.context import AgentContext
from agent.errors import StoreUnavailable, TransportError
from agent.keyrotation import KeyRotator
from agent.retention import Retention
from agent.store import OutgoingMessage
from federation.errors import IsaRelayError

__all__ = ["Housekeeper", "OutboxRelay", "backoff"]

log = logging.getLogger(__name__)

BATCH = 200
IDLE_POLL = 1.0


def backoff(attempts: int, *, base: float = 0.5, cap: float = 300.0) -> timedelta:
    """Exponential backoff after ``attempts`` failed tries: 0.5 s, 1 s, 2 s ... at most ``cap``."""
    return timedelta(seconds=min(cap, base * 2 ** min(attempts, 20)))


class OutboxRelay:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        while True:
            published = await self.publish_due()
            if published == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ctx.outbox_wakeup.wait(), IDLE_POLL)
                self.ctx.outbox_wakeup.clear()

    async def publish_due(self) -> int:
        """Publish every due message once; returns how many the broker confirmed."""
        ctx = self.ctx
        transport = ctx.transport
        if transport is None or not transport.connected:
            return 0
        try:
            due = await ctx.store.due_outgoing(ctx.clock(), BATCH)
        except StoreUnavailable:
            return 0
        results = await asyncio.gather(*(self._publish_one(m) for m in due))
        return sum(results)

    async def _publish_one(self, message: OutgoingMessage) -> int:
        ctx = self.ctx
        message_id, recipient, frame = message.id, message.recipient, message.frame
        attempts, header = message.attempts, message.header
        assert ctx.transport is not None
        try:
            await ctx.transport.publish(recipient, frame, message_id=message_id, kind="envelope")
        except TransportError as exc:
            ctx.metrics.inc("isa_agent_publish_failures_total")
            with contextlib.suppress(StoreUnavailable):
                await ctx.store.mark_attempt_failed(
                    message_id, ctx.clock(), backoff(attempts), exc.message[:200]
                )
            return 0
        try:
            await ctx.store.mark_sent(message_id, ctx.clock())
        except StoreUnavailable:
            log.error("published %s but could not record it; it may be sent again", message_id)
            return 0
        ctx.metrics.inc("isa_agent_published_total")
        event = message_event(
            "send", "agent", message_id, recipient, Flow.of_header(header), outcome="sent"
        )
        await record_after_commit(ctx.audit, ctx.clock(), event, log=log, done="sent")
        return 1


class Housekeeper:
    """Expires overdue messages, enforces retention and rotates and destroys keys, on a timer.

    Retention (``agent/retention.py``) and key rotation (``agent/keyrotation.py``) run at every
    tick under ``ctx.clock``; a failure of one is logged and retried at the next tick.
    """

    def __init__(
        self, ctx: AgentContext, *, interval: float = 30.0, audit_keep: timedelta | None = None
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.retention = Retention(
            ctx.store, ctx.audit, ctx.registry, agency=ctx.agency, audit_keep=audit_keep
        )
        keys = ctx.settings.keys
        self.rotator = KeyRotator(
            agency=ctx.agency,
            encryption_dir=keys.encryption_dir,
            data_dir=ctx.settings.data_dir,
            signing_key=ctx.signing_key,
            keyring=ctx.keyring,
            audit=ctx.audit,
            passphrase=keys.passphrase,
        )

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        await self._flush_repeats()
        await self._expire()
        await self._retain()
        await self._rotate()

    async def _flush_repeats(self) -> None:
        """Write the summary entry of every closed window of repeated events."""
        try:
            await self.ctx.repeat_audit.flush(self.ctx.clock())
        except StoreUnavailable:
            log.error("cannot write the audit log's repeat summaries; retrying next tick")

    async def _expire(self) -> None:
        ctx = self.ctx
        try:
            expired = await ctx.store.expire_overdue(ctx.clock())
        except StoreUnavailable:
            return
        if expired:
            ctx.metrics.inc("isa_agent_expired_total", len(expired))
            log.warning("%d messages expired undelivered (non-delivery)", len(expired))

    async def _retain(self) -> None:
        try:
            report = await self.retention.run(self.ctx.clock())
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
            note = await self.rotator.tick(self.ctx.clock())
        except (IsaRelayError, OSError) as exc:
            log.error("key rotation failed (%s); retrying next tick", exc.__class__.__name__)
            return
        finally:
            self.ctx.keyring = self.rotator.keyring
        if note is not None:
            log.warning(
                "encryption key rotated to %s: give data_dir/announcements/%s.json to the operator",
                note.kid, note.kid,
            )  # fmt: skip
