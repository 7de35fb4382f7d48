"""Specification of schema migrations: the store and the audit log carry ``PRAGMA user_version``,
open the files of the previous release (48272d7) and migrate them forward, and refuse newer ones."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import nacl.secret
import pytest

from agent.audit import AuditLog
from agent.audit.chain import MIGRATIONS as AUDIT_MIGRATIONS
from agent.errors import SchemaTooNew
from agent.store import DEFAULT_FILENAME, SqliteStore
from agent.store.migrations import Migration, migrate, schema_version
from agent.store.sql import MIGRATIONS as STORE_MIGRATIONS
from federation.audit_chain import GENESIS, AuditEntry, chain_hash, entry_bytes, sign_checkpoint
from federation.canonical import canonical_json
from federation.keys import SigningKey
from federation.outbox import Status
from tests.unit.agent.conftest import NOW, header

RELEASE = Path(__file__).parents[2] / "fixtures" / "release-48272d7"
KEY = SigningKey(bytes(range(32)))
SECRET = bytes(range(32, 64))
PAYLOAD = b'{"synthetic":true,"ref":"SYN-0042"}'
US = 1_000_000


def _us(seconds: int = 0) -> int:
    return int((NOW + timedelta(seconds=seconds)).timestamp()) * US


def _release_file(path: Path, schema: str) -> sqlite3.Connection:
    """A file laid out exactly as release 48272d7 made it (its schema, user_version 0)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript((RELEASE / schema).read_text(encoding="utf-8"))
    return conn


def make_release_store(data_dir: Path) -> None:
    """A 48272d7 store: a delivered message with its receipt, and one inbox delivery."""
    conn = _release_file(data_dir / DEFAULT_FILENAME, "store_schema.sql")
    conn.execute("INSERT INTO meta (name, value) VALUES ('kek_check', ?)", (b"no-kek",))
    conn.execute(
        "INSERT INTO outbox VALUES ('m-1', 'case-system', 'k-1', ?, 'syn-council', ?, X'49524C31',"
        " 'delivered', 1, ?, ?, ?)",
        ("0" * 64, canonical_json(header("m-1")).decode(), _us(), _us(), _us(86400)),
    )
    steps = ((0, "queued", "accepted"), (1, "sent", "published"), (2, "delivered", "receipt"))
    for seconds, status, detail in steps:
        conn.execute(
            "INSERT INTO history (message_id, at, status, detail) VALUES ('m-1', ?, ?, ?)",
            (_us(seconds), status, detail),
        )
    conn.execute("INSERT INTO receipts VALUES ('m-1', X'49525231', 'delivered', '', ?)", (_us(2),))
    data_key = bytes(range(100, 132))
    ciphertext = bytes(nacl.secret.SecretBox(data_key).encrypt(PAYLOAD))
    conn.execute(
        "INSERT INTO inbox (id, sender, header_json, ciphertext, received_at)"
        " VALUES ('e-1', 'syn-police', ?, ?, ?)",
        (canonical_json(header("e-1", "syn-police")).decode(), ciphertext, _us(3)),
    )
    conn.execute("INSERT INTO data_keys VALUES ('e-1', ?)", (data_key,))
    conn.execute("INSERT INTO seen VALUES ('e-1', ?)", (_us(3),))
    conn.close()


def make_release_audit(data_dir: Path) -> None:
    """A 48272d7 audit log: three chained entries and a signed checkpoint over them."""
    conn = _release_file(data_dir / "audit.sqlite", "audit_schema.sql")
    prev = GENESIS
    for seq in (1, 2, 3):
        at = NOW + timedelta(seconds=seq)
        entry = AuditEntry(seq=seq, at=at.strftime("%Y-%m-%dT%H:%M:%SZ"), agency="syn-police",
                           action="submit", actor="case-system", message_id=f"m-{seq}")  # fmt: skip
        data = entry_bytes(entry)
        prev = chain_hash(prev, data)
        conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                     (seq, _us(seq), f"m-{seq}", data, prev))  # fmt: skip
    checkpoint = sign_checkpoint(KEY, agency="syn-police", seq=3, entry_hash=prev, at=NOW)
    conn.execute("INSERT INTO checkpoints VALUES (3, ?)", (checkpoint.model_dump_json().encode(),))
    conn.close()


def audit_log(data_dir: Path) -> AuditLog:
    return AuditLog(data_dir, agency="syn-police", signing_key=KEY, subject_secret=SECRET,
                    clock=lambda: NOW, checkpoint_on_close=False)  # fmt: skip


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return schema_version(conn)


class TestStoreFromThePreviousRelease:
    async def test_a_delivered_message_keeps_its_status_and_receipt(self, tmp_path: Path) -> None:
        """A message delivered under 48272d7 reads as delivered, with its receipt and history."""
        make_release_store(tmp_path)
        async with SqliteStore(tmp_path) as store:
            status = await store.message_status("m-1")
        assert status.status is Status.DELIVERED
        assert [h.status for h in status.history] == [Status.QUEUED, Status.SENT, Status.DELIVERED]
        assert status.receipt is not None
        assert status.receipt.status == "delivered"

    async def test_an_inbox_payload_stays_readable(self, tmp_path: Path) -> None:
        """A delivery stored encrypted by 48272d7 decrypts to the same bytes after the upgrade."""
        make_release_store(tmp_path)
        async with SqliteStore(tmp_path) as store:
            assert await store.read_inbox_payload("e-1") == PAYLOAD

    async def test_opening_sets_the_schema_version(self, tmp_path: Path) -> None:
        """A 48272d7 store (user_version 0) is at the latest version once opened."""
        make_release_store(tmp_path)
        assert user_version(tmp_path / DEFAULT_FILENAME) == 0
        async with SqliteStore(tmp_path):
            pass
        assert user_version(tmp_path / DEFAULT_FILENAME) == len(STORE_MIGRATIONS)


class TestStoreAtMigrationTwo:
    async def test_a_store_with_the_review_tables_gets_the_retention_table(
        self, tmp_path: Path
    ) -> None:
        """A store at version 2 (main's reviews and events, before the retention facts) opens
        at the latest version with inbox_retention added, and a legal hold can be recorded."""
        make_release_store(tmp_path)
        path = tmp_path / DEFAULT_FILENAME
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            migrate(conn, STORE_MIGRATIONS[:2], what="store", path=path)
        finally:
            conn.close()
        assert user_version(path) == 2
        async with SqliteStore(tmp_path) as store:
            assert await store.set_legal_hold("e-1", True, NOW)
        assert user_version(path) == len(STORE_MIGRATIONS) == 3
        with sqlite3.connect(path) as check:
            tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master")}
        assert {"reviews", "events", "inbox_retention"} <= tables


class TestAuditFromThePreviousRelease:
    async def test_the_chain_verifies_and_grows(self, tmp_path: Path) -> None:
        """A 48272d7 audit log verifies intact after the upgrade and takes new entries."""
        make_release_audit(tmp_path)
        async with audit_log(tmp_path) as log:
            assert await log.verify(KEY.verify_key) is None
            assert await log.count() == 3
        assert user_version(tmp_path / "audit.sqlite") == len(AUDIT_MIGRATIONS)


class TestNewerThanTheCode:
    async def test_a_newer_store_is_refused_and_left_alone(self, tmp_path: Path) -> None:
        """A store with a schema version above ours does not open and keeps its version."""
        async with SqliteStore(tmp_path):
            pass
        newer = len(STORE_MIGRATIONS) + 1
        with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as conn:
            conn.execute(f"PRAGMA user_version = {newer}")
        with pytest.raises(SchemaTooNew, match=f"schema version {newer}.*newer release"):
            await SqliteStore(tmp_path).open()
        assert user_version(tmp_path / DEFAULT_FILENAME) == newer

    async def test_a_newer_audit_log_is_refused(self, tmp_path: Path) -> None:
        """An audit log with a schema version above ours does not open."""
        make_release_audit(tmp_path)
        with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
            conn.execute(f"PRAGMA user_version = {len(AUDIT_MIGRATIONS) + 1}")
        with pytest.raises(SchemaTooNew, match="audit log"):
            await audit_log(tmp_path).open()


def _fail(conn: sqlite3.Connection) -> None:
    raise RuntimeError("synthetic failure in migration 3")


class TestMigrate:
    MIGRATIONS: tuple[Migration, ...] = (
        (1, "CREATE TABLE a (x INTEGER);\n-- a comment\nCREATE TABLE b (y TEXT);\n"),
        (2, lambda conn: conn.execute("INSERT INTO a VALUES (1)") and None),
    )

    def test_an_empty_file_gets_every_migration(self, tmp_path: Path) -> None:
        """A new file runs migrations 1 and 2 and ends at version 2."""
        conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        assert migrate(conn, self.MIGRATIONS, what="test", path=tmp_path) == 2
        assert schema_version(conn) == 2
        assert conn.execute("SELECT x FROM a").fetchall() == [(1,)]

    def test_only_the_missing_migrations_run(self, tmp_path: Path) -> None:
        """A file at version 1 runs only migration 2 (running 1 again would fail)."""
        conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        migrate(conn, self.MIGRATIONS[:1], what="test", path=tmp_path)
        migrate(conn, self.MIGRATIONS, what="test", path=tmp_path)
        assert schema_version(conn) == 2

    def test_a_failing_migration_leaves_the_file_as_it_was(self, tmp_path: Path) -> None:
        """Migrations 1-3 run in one transaction: when 3 fails, 1 and 2 are undone too."""
        conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        with pytest.raises(RuntimeError, match="migration 3"):
            migrate(conn, (*self.MIGRATIONS, (3, _fail)), what="test", path=tmp_path)
        assert schema_version(conn) == 0
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []

    def test_migrations_out_of_sequence_are_a_bug(self, tmp_path: Path) -> None:
        """A list numbered with a gap is refused before the file is touched."""
        conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        with pytest.raises(ValueError, match="without gaps"):
            migrate(conn, ((1, "SELECT 1;"), (3, "SELECT 1;")), what="test", path=tmp_path)
