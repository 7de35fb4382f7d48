"""The audit log over the shared store writer (issue 14, point 1): the chain's tail lives in the
writer thread, is read again in every transaction and forgotten on a rollback."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.audit import AuditEvent, AuditLog
from agent.errors import StoreUnavailable
from federation.keys import SigningKey

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = SigningKey(bytes(range(32)))


def _open(path: Path) -> AuditLog:
    return AuditLog(
        path, agency="police", signing_key=KEY, subject_secret=bytes(32), clock=lambda: T0,
        checkpoint_every=3,
    )  # fmt: skip


def _event(n: int) -> AuditEvent:
    return AuditEvent("ack", "case-system", f"msg-{n}")


class TestTheChainTail:
    async def test_two_logs_on_one_file_keep_one_chain(self, tmp_path: Path) -> None:
        """An agent and ``isa-agent keys rotate`` appending in turn still make one valid chain."""
        async with _open(tmp_path) as agent, _open(tmp_path) as cli:
            for n in range(6):
                await (agent if n % 2 == 0 else cli).record(_event(n), T0)
            assert [e.seq for e in await agent.entries()] == [1, 2, 3, 4, 5, 6]
            assert await agent.verify() is None

    async def test_a_rolled_back_batch_leaves_the_chain_whole(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A disk error in one append fails that record only; the others chain without a gap."""
        async with _open(tmp_path) as audit:
            real = audit._insert

            def failing(conn: sqlite3.Connection, seq: int, *args: object) -> bytes:
                if args[1]["message_id"] == "msg-1":  # type: ignore[index]
                    raise sqlite3.OperationalError("disk I/O error")
                return real(conn, seq, *args)  # type: ignore[arg-type]

            monkeypatch.setattr(audit, "_insert", failing)
            outcomes = await asyncio.gather(
                *(audit.record(_event(n), T0) for n in range(3)), return_exceptions=True
            )
            assert [type(o) for o in outcomes] == [type(None), StoreUnavailable, type(None)]
            assert [e.message_id for e in await audit.entries()] == ["msg-0", "msg-2"]
            assert await audit.verify() is None

    async def test_records_are_chained_in_call_order(self, tmp_path: Path) -> None:
        """Entries take the order of the record calls, not of the awaits."""
        async with _open(tmp_path) as audit:
            futures = [audit.record(_event(n), T0) for n in range(5)]
            for future in reversed(futures):
                await future
            assert [e.message_id for e in await audit.entries()] == [f"msg-{n}" for n in range(5)]
