"""What only the SQLite store must show: durability, pragmas, group commit, failures, shredding."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import nacl.exceptions
import nacl.secret
import pytest

from agent.errors import IdempotencyConflict, StoreUnavailable
from agent.store import DEFAULT_FILENAME, SqliteStore
from federation.outbox import Status
from tests.unit.agent.conftest import NOW, enqueue, header

BIG = b"x" * 8192


def raw(tmp_path: Path) -> sqlite3.Connection:
    """A plain connection to the store's file, to look at what is really on disk."""
    return sqlite3.connect(tmp_path / DEFAULT_FILENAME)


async def accept(store: SqliteStore, envelope_id: str, payload: bytes = b"SYN-payload") -> bool:
    return await store.accept_incoming(
        envelope_id=envelope_id,
        sender="syn-police",
        header=header(envelope_id),
        payload=payload,
        now=NOW,
    )


async def fill_until_full(store: SqliteStore) -> tuple[int, StoreUnavailable | None]:
    """Enqueue 8 KiB messages until the store refuses; how many fit, and the error."""
    for i in range(200):
        try:
            await enqueue(store, f"m-{i}", body=BIG)
        except StoreUnavailable as exc:
            return i, exc
    return 200, None


def files_holding(directory: Path, needle: bytes) -> list[str]:
    """Names of the store's files (db, WAL, shm) that contain ``needle``."""
    files = [p for p in directory.iterdir() if p.name.startswith(DEFAULT_FILENAME)]
    assert files
    return [p.name for p in files if needle in p.read_bytes()]


class TestDurability:
    async def test_everything_is_there_after_reopening_the_file(self, tmp_path: Path) -> None:
        """Outbox, history, receipts, inbox, payloads and seen ids survive a close and reopen."""
        async with SqliteStore(tmp_path) as store:
            await enqueue(store, "m-1", key="k-1")
            await store.mark_sent("m-1", NOW)
            await store.record_receipt(
                envelope_id="m-1", frame=b"IRR1", status="delivered", reason="", at=NOW
            )
            await accept(store, "e-1", b"SYN-durable")
        async with SqliteStore(tmp_path) as store:
            status = await store.message_status("m-1")
            assert status.status is Status.DELIVERED
            assert len(status.history) == 3
            assert (await enqueue(store, "m-2", key="k-1")).id == "m-1"
            assert await store.read_inbox_payload("e-1") == b"SYN-durable"
            assert await accept(store, "e-1") is False

    async def test_the_file_is_in_wal_mode_and_private(self, tmp_path: Path) -> None:
        """The database uses WAL and only its owner may read it (it holds data keys)."""
        async with SqliteStore(tmp_path):
            pass
        assert raw(tmp_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert stat.S_IMODE((tmp_path / DEFAULT_FILENAME).stat().st_mode) == 0o600

    async def test_payloads_are_not_stored_in_clear(self, tmp_path: Path) -> None:
        """The inbox row holds ciphertext, never the payload bytes."""
        async with SqliteStore(tmp_path) as store:
            await accept(store, "e-1", b"SYN-SECRET-MARKER")
        [(ciphertext,)] = raw(tmp_path).execute("SELECT ciphertext FROM inbox").fetchall()
        assert b"SYN-SECRET-MARKER" not in ciphertext


class TestGroupCommit:
    async def test_concurrent_writes_share_transactions(self, tmp_path: Path) -> None:
        """Many concurrent enqueues commit in fewer transactions than writes."""
        async with SqliteStore(tmp_path) as store:
            await asyncio.gather(*(enqueue(store, f"m-{i}") for i in range(200)))
            assert await store.outbox_depth() == 200
            assert store.commits < 200

    async def test_a_conflict_in_a_batch_does_not_spoil_the_others(self, tmp_path: Path) -> None:
        """A job that fails on its own is rolled back alone; its batch-mates commit."""
        async with SqliteStore(tmp_path) as store:
            await enqueue(store, "m-0", key="k")
            results = await asyncio.gather(
                *(enqueue(store, f"m-{i}") for i in range(1, 6)),
                enqueue(store, "m-x", key="k", body=b"other"),
                *(enqueue(store, f"m-{i}") for i in range(6, 11)),
                return_exceptions=True,
            )
            assert [type(r) for r in results].count(IdempotencyConflict) == 1
            assert await store.outbox_depth() == 11


class TestFailures:
    async def test_a_full_disk_is_store_unavailable_and_stores_nothing(
        self, tmp_path: Path
    ) -> None:
        """When the file cannot grow, enqueue raises StoreUnavailable and leaves no trace."""
        async with SqliteStore(tmp_path, max_page_count=40) as store:
            stored, error = await fill_until_full(store)
            assert error is not None
            assert "full" in error.message
            assert await store.outbox_depth() == stored
            conn = raw(tmp_path)
            assert conn.execute("SELECT count(*) FROM history").fetchone()[0] == stored
            assert (
                conn.execute(
                    "SELECT count(*) FROM outbox WHERE id = ?", (f"m-{stored}",)
                ).fetchone()[0]
                == 0
            )

    async def test_the_store_keeps_working_after_a_full_disk(self, tmp_path: Path) -> None:
        """A failed write does not wedge the writer: small writes still succeed."""
        async with SqliteStore(tmp_path, max_page_count=40) as store:
            assert (await fill_until_full(store))[1] is not None
            assert await accept(store, "e-1") is True

    async def test_an_unwritable_data_dir_is_store_unavailable(self, tmp_path: Path) -> None:
        """A data_dir that cannot be created fails to open with StoreUnavailable."""
        (tmp_path / "file").write_text("not a directory")
        with pytest.raises(StoreUnavailable):
            await SqliteStore(tmp_path / "file" / "data").open()

    async def test_a_file_that_is_not_a_database_is_store_unavailable(self, tmp_path: Path) -> None:
        """Garbage where the database should be is StoreUnavailable, not a crash."""
        (tmp_path / DEFAULT_FILENAME).write_bytes(b"garbage" * 1000)
        with pytest.raises(StoreUnavailable):
            await SqliteStore(tmp_path).open()

    async def test_a_closed_store_refuses_writes_and_reads(self, tmp_path: Path) -> None:
        """Using the store after close is StoreUnavailable."""
        store = await SqliteStore(tmp_path).open()
        await store.close()
        with pytest.raises(StoreUnavailable):
            await enqueue(store, "m-1")
        with pytest.raises(StoreUnavailable):
            await store.outbox_depth()


class TestCryptoShredding:
    async def test_after_purge_the_key_row_is_gone_and_nothing_decrypts(
        self, tmp_path: Path
    ) -> None:
        """Purge deletes the data key; no key left in the file opens the ciphertext."""
        async with SqliteStore(tmp_path) as store:
            await accept(store, "e-1", b"SYN-to-be-shredded")
            await accept(store, "e-2", b"SYN-kept")
            await store.purge_inbox_payload("e-1", NOW)
        conn = raw(tmp_path)
        [(ciphertext,)] = conn.execute("SELECT ciphertext FROM inbox WHERE id = 'e-1'").fetchall()
        keys = [bytes(k) for (m, k) in conn.execute("SELECT message_id, key FROM data_keys")]
        assert [m for (m,) in conn.execute("SELECT message_id FROM data_keys")] == ["e-2"]
        for key in keys:
            with pytest.raises(nacl.exceptions.CryptoError):
                nacl.secret.SecretBox(key).decrypt(ciphertext)

    async def test_the_shredded_key_bytes_are_gone_from_the_files(self, tmp_path: Path) -> None:
        """secure_delete and a WAL checkpoint leave no copy of the key in the db or WAL file."""
        async with SqliteStore(tmp_path) as store:
            await accept(store, "e-1")
            [(key,)] = raw(tmp_path).execute("SELECT key FROM data_keys").fetchall()
            await store.purge_inbox_payload("e-1", NOW)
            assert files_holding(tmp_path, bytes(key)) == []

    async def test_expiry_of_a_shredded_message_keeps_its_header(self, tmp_path: Path) -> None:
        """The header (no personal data) stays for the audit trail after the purge."""
        async with SqliteStore(tmp_path) as store:
            await accept(store, "e-1")
            await store.purge_inbox_payload("e-1", NOW + timedelta(days=30))
            [item] = await store.inbox_page(0, 1)
        assert (item.header, item.purged) == (header("e-1"), True)


_WRITER_SCRIPT = """
import asyncio, hashlib, os, signal, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from agent.store import SqliteStore

async def main():
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    store = await SqliteStore(Path(sys.argv[1])).open()
    for i in range(int(sys.argv[2])):
        await store.enqueue_outgoing(
            message_id=f"m-{i}", client="c", idempotency_key=None,
            body_sha256=hashlib.sha256(b"%d" % i).hexdigest(), recipient="syn-council",
            header={"synthetic": True}, frame=b"IRL1", now=now,
            expires_at=now + timedelta(days=1),
        )
        print(f"m-{i}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


class TestCrash:
    def test_every_write_that_returned_survives_a_sigkill(self, tmp_path: Path) -> None:
        """A process killed right after its writes returned loses none of them (no close)."""
        result = subprocess.run(
            [sys.executable, "-c", _WRITER_SCRIPT, str(tmp_path), "50"],
            capture_output=True,
            text=True,
            check=False,
        )  # no timeout: subprocess waits with one fail with EINVAL in the shifted (faketime) run
        acknowledged = result.stdout.split()
        assert result.returncode == -signal.SIGKILL
        assert len(acknowledged) == 50
        stored = {row[0] for row in raw(tmp_path).execute("SELECT id FROM outbox")}
        assert stored == set(acknowledged)


KEK = bytes(range(32))


class TestKeyEncryptionKey:
    async def test_with_a_kek_the_stored_key_alone_opens_nothing(self, tmp_path: Path) -> None:
        """Wrapped data keys: the file's key row does not decrypt the payload by itself."""
        async with SqliteStore(tmp_path, key_encryption_key=KEK) as store:
            await accept(store, "e-1", b"SYN-wrapped")
            assert await store.read_inbox_payload("e-1") == b"SYN-wrapped"
        conn = raw(tmp_path)
        [(ciphertext,)] = conn.execute("SELECT ciphertext FROM inbox").fetchall()
        [(stored,)] = conn.execute("SELECT key FROM data_keys").fetchall()
        assert len(stored) > nacl.secret.SecretBox.KEY_SIZE
        with pytest.raises(nacl.exceptions.CryptoError):
            nacl.secret.SecretBox(bytes(stored)[:32]).decrypt(ciphertext)

    async def test_payloads_survive_reopening_with_the_same_kek(self, tmp_path: Path) -> None:
        """The same KEK opens what it sealed after a restart."""
        async with SqliteStore(tmp_path, key_encryption_key=KEK) as store:
            await accept(store, "e-1", b"SYN-again")
        async with SqliteStore(tmp_path, key_encryption_key=KEK) as store:
            assert await store.read_inbox_payload("e-1") == b"SYN-again"

    @pytest.mark.parametrize(
        ("created_with", "opened_with"),
        [(KEK, bytes(32)), (KEK, None), (None, KEK)],
        ids=["other-kek", "kek-missing", "kek-unexpected"],
    )
    async def test_a_mismatched_kek_is_refused_at_open(
        self, tmp_path: Path, created_with: bytes | None, opened_with: bytes | None
    ) -> None:
        """Opening with another KEK (or without the needed one) fails up front, safely."""
        async with SqliteStore(tmp_path, key_encryption_key=created_with):
            pass
        with pytest.raises(StoreUnavailable) as caught:
            await SqliteStore(tmp_path, key_encryption_key=opened_with).open()
        assert KEK.hex() not in caught.value.message

    def test_a_kek_of_the_wrong_size_is_refused(self, tmp_path: Path) -> None:
        """Only 32-byte KEKs are accepted."""
        with pytest.raises(StoreUnavailable):
            SqliteStore(tmp_path, key_encryption_key=b"short")
