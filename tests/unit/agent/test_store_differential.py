"""The fake cannot drift: random operation sequences give the same answers on both stores."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.store import SqliteStore, Store
from federation.errors import IsaRelayError
from tests.support.memory_store import MemoryStore
from tests.unit.agent.conftest import NOW, enqueue

IDS = st.sampled_from(["a", "b", "c"])
OPERATIONS = st.one_of(
    st.tuples(st.just("enqueue"), IDS, st.sampled_from([None, "k1", "k2"]), st.integers(0, 1)),
    st.tuples(st.just("sent"), IDS),
    st.tuples(st.just("failed_attempt"), IDS),
    st.tuples(st.just("failed"), IDS),
    st.tuples(st.just("receipt"), IDS, st.sampled_from(["delivered", "rejected"])),
    st.tuples(st.just("expire"), st.integers(0, 3)),
    st.tuples(st.just("accept"), IDS),
    st.tuples(st.just("ack"), IDS),
    st.tuples(st.just("purge"), IDS),
)


async def _apply(store: Store, op: tuple[Any, ...]) -> object:
    name, *args = op
    if name == "enqueue":
        message_id, key, body = args
        result = await enqueue(store, message_id, key=key, body=b"body-%d" % body)
        return result.model_dump()
    if name == "sent":
        return await store.mark_sent(args[0], NOW)
    if name == "failed_attempt":
        return await store.mark_attempt_failed(args[0], NOW, timedelta(seconds=5), "down")
    if name == "failed":
        return await store.mark_failed(args[0], NOW, "unroutable")
    if name == "receipt":
        return await store.record_receipt(
            envelope_id=args[0], frame=b"IRR1", status=args[1], reason="", at=NOW
        )
    if name == "expire":
        return sorted(await store.expire_overdue(NOW + timedelta(days=3 * args[0])))
    if name == "accept":
        return await store.accept_incoming(
            envelope_id=args[0], sender="syn-police", header={"id": args[0]},
            payload=b"SYN", now=NOW,
        )  # fmt: skip
    if name == "ack":
        return await store.ack(args[0], NOW)
    return await store.purge_inbox_payload(args[0], NOW)


async def _observe(store: Store, op: tuple[Any, ...]) -> object:
    try:
        return await _apply(store, op)
    except IsaRelayError as exc:
        return type(exc).__name__


async def _snapshot(store: Store) -> object:
    statuses = []
    for message_id in ["a", "b", "c"]:
        try:
            statuses.append((await store.message_status(message_id)).model_dump())
        except IsaRelayError as exc:
            statuses.append(type(exc).__name__)
    inbox = [item.model_dump() for item in await store.inbox_page(0, 100)]
    due = [m.model_dump() for m in await store.due_outgoing(NOW + timedelta(minutes=1), 100)]
    return statuses, inbox, due, await store.outbox_depth()


async def _run_both(ops: list[tuple[Any, ...]], directory: Path) -> None:
    fake = MemoryStore()
    async with SqliteStore(directory) as real:
        for op in ops:
            assert await _observe(real, op) == await _observe(fake, op), op
        assert await _snapshot(real) == await _snapshot(fake)


class TestMemoryStoreMatchesSqlite:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(OPERATIONS, max_size=15))
    def test_any_operation_sequence_gives_the_same_results(
        self, ops: list[tuple[Any, ...]]
    ) -> None:
        """Every answer, error and final state agrees between the fake and SQLite."""
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_run_both(ops, Path(tmp)))
