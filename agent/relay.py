"""Background work: publish the outbox, expire overdue messages, rotate and destroy keys.

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

from agent.audit_events import AuditEvent
from agent.context import AgentContext
from agent.errors import StoreUnavailable, TransportError
from federation.envelope import peek_header

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
        results = await asyncio.gather(*(self._publish_one(m.id, m.recipient, m.frame,
                                                           m.attempts) for m in due))  # fmt: skip
        return sum(results)

    async def _publish_one(
        self, message_id: str, recipient: str, frame: bytes, attempts: int
    ) -> int:
        ctx = self.ctx
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
        header = peek_header(frame)
        try:
            await ctx.audit.record(
            AuditEvent(
                "send", "agent", message_id, recipient, header.isa.id, header.isa.version,
                header.purpose, header.type, header.risk, header.lawful_basis, "sent",
            ),
            ctx.clock(),
            )  # fmt: skip
        except StoreUnavailable:
            log.error("sent %s but could not write its audit entry", message_id)
        return 1


class Housekeeper:
    """Expires overdue messages and retires keys, on a timer."""

    def __init__(self, ctx: AgentContext, *, interval: float = 30.0) -> None:
        self.ctx = ctx
        self.interval = interval

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        ctx = self.ctx
        try:
            expired = await ctx.store.expire_overdue(ctx.clock())
        except StoreUnavailable:
            return
        if expired:
            ctx.metrics.inc("isa_agent_expired_total", len(expired))
            log.warning("%d messages expired undelivered (non-delivery)", len(expired))
