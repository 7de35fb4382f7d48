"""Specification of agent.audit: an append-only, hash-chained log whose verify names the first
broken entry, whatever was changed, deleted, inserted or reordered."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.audit import AuditEvent, AuditLog, load_subject_secret
from federation.errors import KeyFileError
from federation.keys import SigningKey
from federation.subjects import search_keys
from federation.synth import generate_referral

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = SigningKey(bytes(range(32)))
SECRET = bytes(range(32, 64))


def _event(n: int, payload: dict[str, object] | None = None) -> AuditEvent:
    return AuditEvent(
        "submit", "case-system", f"msg-{n}", "assist", "syn-isa", "1.0.0", "safeguarding",
        "marac_referral", "high", {"art6": ["e"]}, "queued",
        fields_shared=("victim.name",), fields_withheld=(("victim.address", "not_in_allow_list"),),
        subject_source=payload,
    )  # fmt: skip


def _open(path: Path, every: int = 4) -> AuditLog:
    return AuditLog(
        path, agency="police", signing_key=KEY, subject_secret=SECRET,
        clock=lambda: T0 + timedelta(days=1), checkpoint_every=every,
    )  # fmt: skip


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[AuditLog]:
    async with _open(tmp_path) as audit:
        for n in range(1, 11):
            await audit.record(_event(n), T0 + timedelta(minutes=n))
        yield audit


def _sql(audit: AuditLog, statement: str, *args: object) -> None:
    with sqlite3.connect(audit.path) as conn:
        conn.execute(statement, args)


def _file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("audit.sqlite*")))


class TestChain:
    async def test_an_untouched_log_verifies(self, log: AuditLog) -> None:
        """Ten entries in a row verify clean."""
        assert await log.verify() is None
        assert await log.count() == 10

    async def test_entries_hold_paths_and_reasons_never_values(self, log: AuditLog) -> None:
        """An entry records withheld field paths with their reason, and the ISA and purpose."""
        entry = (await log.entries())[0]
        assert entry.fields_withheld[0].path == "victim.address"
        assert entry.fields_withheld[0].reason == "not_in_allow_list"
        assert (entry.isa_id, entry.isa_version, entry.purpose) == (
            "syn-isa",
            "1.0.0",
            "safeguarding",
        )
        assert entry.seq == 1
        assert entry.actor == "case-system"

    async def test_concurrent_records_are_all_committed_in_order(self, tmp_path: Path) -> None:
        """Many records at once are group-committed with consecutive sequence numbers."""
        import asyncio

        async with _open(tmp_path) as audit:
            await asyncio.gather(*(audit.record(_event(n), T0) for n in range(50)))
            entries = await audit.entries()
            assert [e.seq for e in entries] == list(range(1, 51))
            assert await audit.verify() is None


class TestTamperingIsDetected:
    async def test_a_changed_entry_is_named(self, log: AuditLog) -> None:
        """Rewriting one entry's content breaks verification at that entry."""
        _sql(
            log,
            "UPDATE entries SET data = replace(data, 'safeguarding', 'marketing') WHERE seq = 6",
        )
        found = await log.verify()
        assert found is not None
        assert found.seq == 6

    async def test_a_deleted_entry_is_named(self, log: AuditLog) -> None:
        """Deleting entry 5 is reported at entry 6, naming the missing one."""
        _sql(log, "DELETE FROM entries WHERE seq = 5")
        found = await log.verify()
        assert found is not None
        assert found.seq == 6
        assert "5..5" in found.problem

    async def test_swapped_entries_are_named(self, log: AuditLog) -> None:
        """Swapping the contents of entries 3 and 4 is reported at entry 3."""
        with sqlite3.connect(log.path) as conn:
            a, b = (
                conn.execute("SELECT data, entry_hash FROM entries WHERE seq = ?", (s,)).fetchone()
                for s in (3, 4)
            )
            conn.execute("UPDATE entries SET data = ?, entry_hash = ? WHERE seq = 3", b)
            conn.execute("UPDATE entries SET data = ?, entry_hash = ? WHERE seq = 4", a)
        found = await log.verify()
        assert found is not None
        assert found.seq == 3
        assert "reordered" in found.problem

    async def test_an_inserted_entry_is_named(self, log: AuditLog) -> None:
        """Renumbering to slip a forged entry in at 4 breaks the chain at 4."""
        with sqlite3.connect(log.path) as conn:
            rows = conn.execute(
                "SELECT seq, data, entry_hash FROM entries WHERE seq >= 4 ORDER BY seq DESC"
            ).fetchall()
            for seq, data, _digest in rows:
                new = bytes(data).replace(f'"seq":{seq},'.encode(), f'"seq":{seq + 1},'.encode())
                conn.execute(
                    "UPDATE entries SET seq = ?, data = ? WHERE seq = ?", (seq + 1, new, seq)
                )
            forged = bytes(rows[-1][1]).replace(b"msg-4", b"msg-X")
            conn.execute(
                "INSERT INTO entries (seq, at_us, data, entry_hash) VALUES (4, 0, ?, ?)",
                (forged, rows[-1][2]),
            )
        found = await log.verify()
        assert found is not None
        assert found.seq == 4

    async def test_a_recomputed_chain_still_fails_at_the_signed_checkpoint(
        self, log: AuditLog
    ) -> None:
        """Re-hashing every entry after a change is caught by the next signed checkpoint."""
        from federation.audit_chain import GENESIS, chain_hash

        with sqlite3.connect(log.path) as conn:
            rows = conn.execute("SELECT seq, data FROM entries ORDER BY seq").fetchall()
            prev = GENESIS
            for seq, data in rows:
                data = bytes(data).replace(b'"msg-2"', b'"msg-9"') if seq == 2 else bytes(data)
                prev = chain_hash(prev, data)
                conn.execute(
                    "UPDATE entries SET data = ?, entry_hash = ? WHERE seq = ?", (data, prev, seq)
                )
        found = await log.verify()
        assert found is not None
        assert found.seq == 4
        assert "checkpoint" in found.problem

    async def test_a_truncated_tail_is_named(self, log: AuditLog) -> None:
        """Deleting the last entries below a checkpoint names the first missing one."""
        _sql(log, "DELETE FROM entries WHERE seq >= 7")
        found = await log.verify()
        assert found is not None
        assert found.seq == 7
        assert "truncated" in found.problem

    async def test_a_forged_checkpoint_is_refused(self, log: AuditLog) -> None:
        """A checkpoint whose signature does not verify is reported."""
        _sql(
            log,
            "UPDATE checkpoints SET body = replace(body, '\"seq\":4', '\"seq\":3') WHERE seq = 4",
        )
        found = await log.verify()
        assert found is not None
        assert "signature" in found.problem


class TestCheckpoints:
    async def test_close_signs_the_end_of_the_chain(self, tmp_path: Path) -> None:
        """After close, the last entry is pinned by a checkpoint, so removing it is detected."""
        async with _open(tmp_path, every=100) as audit:
            for n in range(3):
                await audit.record(_event(n), T0)
        with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
            assert conn.execute("SELECT max(seq) FROM checkpoints").fetchone()[0] == 3
            conn.execute("DELETE FROM entries WHERE seq = 3")
        async with _open(tmp_path, every=100) as audit:
            found = await audit.verify()
        assert found is not None
        assert found.seq == 3

    async def test_another_key_does_not_verify(self, log: AuditLog) -> None:
        """Checkpoints verify only against the agency's own key."""
        found = await log.verify(SigningKey(bytes(32)).verify_key)
        assert found is not None
        assert "signature" in found.problem


class TestRetentionOfTheLog:
    async def test_pruned_log_still_verifies_from_its_anchor(self, log: AuditLog) -> None:
        """Removing entries older than a cutoff keeps a signed anchor; verify passes."""
        removed = await log.prune_before(
            T0 + timedelta(minutes=5, seconds=30), T0 + timedelta(days=1)
        )
        assert removed == 5
        entries = await log.entries()
        assert entries[0].seq == 6
        assert entries[-1].action == "purge"
        assert await log.verify() is None

    async def test_tampering_after_pruning_is_still_named(self, log: AuditLog) -> None:
        """The anchor pins the first surviving entry's link."""
        await log.prune_before(T0 + timedelta(minutes=5, seconds=30), T0 + timedelta(days=1))
        _sql(log, "DELETE FROM entries WHERE seq = 6")
        found = await log.verify()
        assert found is not None
        assert found.seq == 7


class TestSubjects:
    async def test_keys_are_stored_and_payload_values_are_not(self, tmp_path: Path) -> None:
        """The log file holds the subject keys but no name from the payload."""
        payload = generate_referral("marac_referral", random.Random(5))
        async with _open(tmp_path) as audit:
            await audit.record(_event(1, payload), T0)
            await audit.record(AuditEvent("send", "agent", "msg-1", "assist"), T0)
            victim = payload["victim"]
            found = await audit.search(search_keys(SECRET, victim["name"], victim["date_of_birth"]))
        assert [(m.action, m.match) for m in found] == [
            ("submit", "name+dob"),
            ("send", "name+dob"),
        ]
        raw = _file_bytes(tmp_path)
        assert victim["name"].encode() not in raw
        assert victim["name"].split()[-1].encode() not in raw


class TestSubjectSecret:
    def test_created_once_with_mode_0600(self, tmp_path: Path) -> None:
        """The first call creates a 32-byte, owner-only key; later calls read the same one."""
        path = tmp_path / "subject.key"
        first = load_subject_secret(path)
        assert len(first) == 32
        assert path.stat().st_mode & 0o777 == 0o600
        assert load_subject_secret(path) == first

    def test_a_readable_key_is_refused(self, tmp_path: Path) -> None:
        """A subject key that group or others can read is refused."""
        path = tmp_path / "subject.key"
        load_subject_secret(path)
        path.chmod(0o644)
        with pytest.raises(KeyFileError, match="group or others"):
            load_subject_secret(path)


class TestExport:
    async def test_entries_between_since_and_until(self, log: AuditLog) -> None:
        """since is inclusive and until exclusive, by the entry's time."""
        since, until = T0 + timedelta(minutes=3), T0 + timedelta(minutes=6)
        assert [e.seq for e in await log.entries(since, until)] == [3, 4, 5]

    async def test_csv_row_flattens_lists_and_basis(self, log: AuditLog) -> None:
        """A CSV row holds withheld fields as path:reason and the lawful basis as JSON."""
        from agent.commands.audit import CSV_COLUMNS, csv_row

        row = dict(zip(CSV_COLUMNS, csv_row((await log.entries())[0]), strict=True))
        assert row["fields_withheld"] == "victim.address:not_in_allow_list"
        assert row["lawful_basis"] == '{"art6": ["e"]}'
        assert row["message_id"] == "msg-1"


class TestRecordMany:
    async def test_several_events_are_committed_together_in_order(self, tmp_path: Path) -> None:
        """record_many appends its events consecutively, in the order given."""
        async with _open(tmp_path) as audit:
            await audit.record(_event(1), T0)
            await audit.record_many([_event(2), _event(3)], T0)
            entries = await audit.entries()
            assert [(e.seq, e.message_id) for e in entries] == [
                (1, "msg-1"),
                (2, "msg-2"),
                (3, "msg-3"),
            ]
            assert await audit.verify() is None

    async def test_a_log_that_cannot_write_raises_store_unavailable(self, tmp_path: Path) -> None:
        """No unlogged disclosure: a record that cannot be made durable raises StoreUnavailable."""
        from agent.errors import StoreUnavailable

        audit = _open(tmp_path)
        async with audit:
            pass
        with pytest.raises(StoreUnavailable):
            await audit.record(_event(1), T0)

    async def test_an_unexpected_error_reaches_every_waiter(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A bug in the append (not a full disk) fails the records waiting on it: none hangs,
        and the next record still works."""
        import asyncio

        async with _open(tmp_path) as audit:
            real = audit._insert

            def broken(*args: object, **kwargs: object) -> bytes:
                raise RuntimeError("synthetic bug")

            monkeypatch.setattr(audit, "_insert", broken)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(audit.record(_event(n), T0) for n in range(3)),
                               return_exceptions=True),
                timeout=10,
            )  # fmt: skip
            assert [type(o) for o in outcomes] == [RuntimeError] * 3
            monkeypatch.setattr(audit, "_insert", real)
            await asyncio.wait_for(audit.record(_event(9), T0), timeout=10)
            assert [e.message_id for e in await audit.entries()] == ["msg-9"]
