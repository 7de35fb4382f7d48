"""Specification of outbox retention: an envelope is deleted once its delivery receipt arrived."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.audit import AuditLog
from agent.retention import Retention
from agent.store import SqliteStore
from federation.isa import IsaRegistry
from federation.keys import SigningKey

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def _queue(store: SqliteStore, message_id: str) -> None:
    await store.enqueue_outgoing(
        message_id=message_id, client="case-system", idempotency_key=None, body_sha256="0" * 64,
        recipient="assist", header={"id": message_id}, frame=b"IRL1-synthetic-frame", now=T0,
        expires_at=T0 + timedelta(days=5),
    )  # fmt: skip


class TestOutboxFrames:
    async def test_only_delivered_envelopes_are_deleted(self, tmp_path: Path) -> None:
        """A delivered message loses its frame and is audited; a sent one keeps it."""
        audit = AuditLog(
            tmp_path, agency="police-scotland", signing_key=SigningKey(bytes(32)),
            subject_secret=bytes(32), clock=lambda: T0,
        )  # fmt: skip
        async with SqliteStore(tmp_path) as store, audit:
            for message_id in ("m-delivered", "m-sent"):
                await _queue(store, message_id)
                await store.mark_sent(message_id, T0)
            await store.record_receipt(
                envelope_id="m-delivered", frame=b"IRR1", status="delivered", reason="", at=T0
            )
            retention = Retention(store, audit, IsaRegistry(), agency="police-scotland")
            report = await retention.run(T0 + timedelta(minutes=1))
            assert report.frames_purged == ["m-delivered"]
            status = await store.message_status("m-delivered")
            assert status.status == "delivered"
            assert status.history[-1].detail == "envelope purged (retention)"
            assert (await retention.run(T0 + timedelta(minutes=2))).frames_purged == []
            entries = await audit.entries()
            assert [(e.message_id, e.outcome) for e in entries] == [
                ("m-delivered", "outbox_envelope_deleted")
            ]
