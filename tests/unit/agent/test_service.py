"""``agent.service.Service`` over fakes: the submit rules (202 only after the outbox commit,
audit after it, fail closed) and the health it reports from its publisher and keys."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from agent.errors import Denied, StoreUnavailable, TrustUnavailable
from agent.publisher import LatePublisher
from federation.manifest import TrustState
from federation.outbox import Status
from tests.support.memory_store import MemoryStore
from tests.unit.agent.fakes import (
    CALLER,
    NOW,
    RECIPIENT,
    FixedTrust,
    ListAudit,
    RecordingPublisher,
    request,
    service,
)


@dataclass
class _Observed:
    """What the store held when an audit entry was recorded."""

    store: MemoryStore

    async def __call__(self) -> int:
        return await self.store.outbox_depth()


class _FullDisk(MemoryStore):
    async def enqueue_outgoing(self, **_: object) -> object:  # type: ignore[override]
        raise StoreUnavailable("disk full")


class TestSubmit:
    async def test_submit_answers_with_the_message_the_outbox_holds(self) -> None:
        """The answer names a message already queued in the outbox, sealed for the recipient."""
        store = MemoryStore()
        answer = await service(store, ListAudit()).submit(CALLER, request())
        [due] = await store.due_outgoing(NOW, 10)
        assert (answer.status, due.id, due.recipient) == ("queued", answer.id, RECIPIENT)
        assert (await store.message_status(answer.id)).status is Status.QUEUED

    async def test_submit_audits_the_decision_and_the_submit_after_the_commit(self) -> None:
        """Both entries name the message and are recorded once the outbox holds it."""
        store = MemoryStore()
        audit = ListAudit(observe=_Observed(store))
        answer = await service(store, audit).submit(CALLER, request())
        assert [(e.action, e.message_id, e.outcome, depth) for e, _, depth in audit.entries] == [
            ("decision", answer.id, "PERMIT", 1),
            ("alter", answer.id, "generalised", 1),
            ("submit", answer.id, "queued", 1),
        ]

    async def test_submit_wakes_the_outbox_relay(self) -> None:
        """A queued message wakes the relay at once (no wait for its idle poll)."""
        wake = asyncio.Event()
        await service(MemoryStore(), ListAudit(), wake=wake).submit(CALLER, request())
        assert wake.is_set()

    async def test_submit_that_cannot_be_stored_is_not_answered_nor_audited_as_queued(
        self,
    ) -> None:
        """A store that cannot commit fails the submit (503) and no submit entry is written."""
        audit, wake = ListAudit(), asyncio.Event()
        with pytest.raises(StoreUnavailable):
            await service(_FullDisk(), audit, wake=wake).submit(CALLER, request())
        assert (audit.actions(), wake.is_set()) == ([], False)

    async def test_denied_submit_stores_nothing_and_audits_the_decision(self) -> None:
        """A purpose the ISA does not permit is refused, only its decision is audited."""
        store, audit = MemoryStore(), ListAudit()
        with pytest.raises(Denied):
            await service(store, audit).submit(CALLER, request(purpose="curiosity"))
        assert await store.outbox_depth() == 0
        assert [(e.action, e.message_id, e.outcome) for e, _, _ in audit.entries] == [
            ("decision", None, "DENY")
        ]

    async def test_submit_under_an_expired_manifest_fails_closed(self) -> None:
        """Past the manifest's expiry nothing is sealed or stored (fail closed)."""
        store = MemoryStore()
        trust = FixedTrust(state=TrustState(None))
        with pytest.raises(TrustUnavailable):
            await service(store, ListAudit(), trust=trust).submit(CALLER, request())
        assert await store.outbox_depth() == 0

    async def test_repeated_idempotency_key_answers_the_first_message(self) -> None:
        """The same key and body again answer the first id and queue nothing more."""
        store, audit = MemoryStore(), ListAudit()
        agent = service(store, audit)
        first = await agent.submit(CALLER, request(idempotency_key="k-1"))
        again = await agent.submit(CALLER, request(idempotency_key="k-1"))
        assert (again.id, await store.outbox_depth()) == (first.id, 1)
        assert audit.actions() == ["decision", "alter", "submit"]


class TestHealth:
    async def test_health_is_degraded_while_no_transport_is_attached(self) -> None:
        """With the broker session down the agent says degraded, broker not connected."""
        health = await service(MemoryStore(), ListAudit(), publisher=LatePublisher()).health()
        assert (health.status, health.broker.connected) == ("degraded", False)

    async def test_health_is_ok_with_a_connected_publisher_and_an_announced_key(self) -> None:
        """Valid manifest, connected publisher, current announced key: ok."""
        publisher = RecordingPublisher()
        health = await service(MemoryStore(), ListAudit(), publisher=publisher).health()
        assert (health.status, health.broker.connected, health.keys.valid) == ("ok", True, True)
