"""``agent.relay.OutboxRelay`` over fakes: it publishes what the outbox holds, marks it sent once
confirmed, and backs off after a failed publish, never dropping a message."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta

from agent.errors import TransportError
from agent.publisher import LatePublisher
from agent.relay import backoff
from agent.store import OutgoingMessage
from federation.outbox import Status
from tests.support.memory_store import MemoryStore
from tests.unit.agent.fakes import NOW, RECIPIENT, ListAudit, RecordingPublisher, queued, relay


class _DetachWhileReading(MemoryStore):
    """A store during whose outbox read the broker session ends (the transport detaches)."""

    def __init__(self, session: ExitStack) -> None:
        super().__init__()
        self.session = session

    async def due_outgoing(self, now: datetime, limit: int) -> list[OutgoingMessage]:
        due = list(await super().due_outgoing(now, limit))
        self.session.close()
        return due


class TestPublishDue:
    async def test_relay_publishes_due_messages_and_marks_them_sent(self) -> None:
        """Each queued message is published once, as an envelope to its recipient, then sent."""
        store, publisher, audit = MemoryStore(), RecordingPublisher(), ListAudit()
        message_id = await queued(store)
        published = await relay(store, publisher, audit, lambda: NOW).publish_due()
        assert published == 1
        assert [(p.to, p.kind, p.message_id) for p in publisher.published] == [
            (RECIPIENT, "envelope", message_id)
        ]
        assert (await store.message_status(message_id)).status is Status.SENT
        assert [(e.action, e.message_id, e.outcome) for e, _, _ in audit.entries] == [
            ("send", message_id, "sent")
        ]

    async def test_relay_retries_a_failed_publish_after_its_backoff(self) -> None:
        """A transport error leaves the message queued, due again only after the backoff."""
        store, audit = MemoryStore(), ListAudit()
        failing = RecordingPublisher(fail=TransportError("confirm timed out"))
        message_id = await queued(store)
        assert await relay(store, failing, audit, lambda: NOW).publish_due() == 0
        assert (await store.message_status(message_id)).status is Status.QUEUED
        assert await store.due_outgoing(NOW + backoff(0) - timedelta(seconds=1), 10) == []
        later = NOW + backoff(0)
        [due] = await store.due_outgoing(later, 10)
        assert (due.id, due.attempts, audit.actions()) == (message_id, 1, [])
        assert await relay(store, RecordingPublisher(), audit, lambda: later).publish_due() == 1

    async def test_relay_publishes_nothing_while_no_transport_is_attached(self) -> None:
        """Before the broker session is up the outbox is left as it is, no attempt counted."""
        store = MemoryStore()
        message_id = await queued(store)
        assert await relay(store, LatePublisher(), ListAudit(), lambda: NOW).publish_due() == 0
        [due] = await store.due_outgoing(NOW, 10)
        assert (due.id, due.attempts) == (message_id, 0)

    async def test_transport_detached_during_the_outbox_read_counts_a_failed_attempt(
        self,
    ) -> None:
        """A broker session ending while the relay reads the outbox makes that attempt fail
        and back off (the relay asserted ``ctx.transport is not None`` and crashed the agent)."""
        with ExitStack() as session:
            publisher = LatePublisher()
            store = _DetachWhileReading(session)
            message_id = await queued(store)
            session.enter_context(publisher.attached(RecordingPublisher()))
            assert await relay(store, publisher, ListAudit(), lambda: NOW).publish_due() == 0
        [due] = await store.due_outgoing(NOW + backoff(0), 10)
        assert (due.id, due.attempts) == (message_id, 1)
