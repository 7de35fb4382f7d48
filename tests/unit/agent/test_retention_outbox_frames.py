"""Specification of outbox retention: an envelope is deleted once its delivery receipt arrived."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import retention as retention_module
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

    async def test_a_purged_envelope_no_longer_has_a_frame_hash(self, tmp_path: Path) -> None:
        """Once retention deleted a delivered frame, receipts are not checked against its hash."""
        async with SqliteStore(tmp_path) as store:
            await _queue(store, "m-1")
            await store.record_receipt(
                envelope_id="m-1", frame=b"IRR1", status="delivered", reason="", at=T0
            )
            assert (await store.sent_envelope("m-1")).frame_sha256 is not None
            await store.purge_delivered_frames(T0)
            sent = await store.sent_envelope("m-1")
            assert (sent.recipient, sent.frame_sha256) == ("assist", None)

    async def test_a_burst_is_purged_in_bounded_batches(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """More delivered envelopes than one batch: every one is purged and audited in the same
        pass, through several bounded store transactions (none holds the writer for long)."""
        monkeypatch.setattr(retention_module, "FRAME_BATCH", 3)
        audit = AuditLog(
            tmp_path, agency="police-scotland", signing_key=SigningKey(bytes(32)),
            subject_secret=bytes(32), clock=lambda: T0,
        )  # fmt: skip
        async with SqliteStore(tmp_path) as store, audit:
            ids = [f"m-{n}" for n in range(7)]
            for message_id in ids:
                await _queue(store, message_id)
                await store.mark_sent(message_id, T0)
                await store.record_receipt(
                    envelope_id=message_id, frame=b"IRR1", status="delivered", reason="", at=T0
                )
            calls: list[int] = []
            real = store.purge_delivered_frames

            async def counted(now: datetime, limit: int = 64) -> Sequence[str]:
                calls.append(limit)
                return await real(now, limit)

            monkeypatch.setattr(store, "purge_delivered_frames", counted)
            retention = Retention(store, audit, IsaRegistry(), agency="police-scotland")
            report = await retention.run(T0 + timedelta(minutes=1))
            assert sorted(report.frames_purged) == ids
            assert calls == [3, 3, 3]  # 3 + 3 + 1
            purged = [e.message_id for e in await audit.entries()]
            assert sorted(purged) == ids
            assert await audit.verify() is None
