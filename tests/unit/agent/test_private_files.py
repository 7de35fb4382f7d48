"""Specification of agent.private_files: what the agent writes is 0600 in 0700 directories from
its first byte, whatever umask it was started with (issue 13 point 2)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.audit import AuditEvent, AuditLog
from agent.cli import main
from agent.private_files import (
    create_private,
    prepare_database,
    private_dir,
    write_private_atomically,
)
from agent.store import SqliteStore
from federation.keys import SigningKey

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Run the test under the usual 0o022 umask (files 0644, dirs 0755 unless made otherwise)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
class TestSqliteSideFiles:
    def test_wal_and_shm_inherit_0600_from_a_database_prepared_before_sqlite_opens_it(
        self, tmp_path: Path
    ) -> None:
        """SQLite gives -wal and -shm the database file's mode, so preparing it first is enough."""
        db = prepare_database(tmp_path / "data" / "x.sqlite")
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (v)")
        sides = {p.name: oct(mode(p)) for p in db.parent.iterdir()}
        conn.close()
        assert sides == {"x.sqlite": "0o600", "x.sqlite-wal": "0o600", "x.sqlite-shm": "0o600"}

    async def test_store_wal_was_world_readable_under_umask_022(self, tmp_path: Path) -> None:
        """The store's directory is 0700 and its database, -wal and -shm are 0600 while open."""
        async with SqliteStore(tmp_path / "data"):
            found = {p.name: oct(mode(p)) for p in (tmp_path / "data").iterdir()}
            found["."] = oct(mode(tmp_path / "data"))
        assert set(found.values()) == {"0o600", "0o700"}, found
        assert {n for n in found if n.endswith(("-wal", "-shm"))}, found

    async def test_audit_wal_was_world_readable_under_umask_022(self, tmp_path: Path) -> None:
        """The audit log's directory is 0700 and its database, -wal and -shm are 0600 while open."""
        audit = AuditLog(tmp_path / "data", agency="police", signing_key=SigningKey(bytes(32)),
                         subject_secret=bytes(32), clock=lambda: T0)  # fmt: skip
        async with audit:
            await audit.record(AuditEvent("submit", "case-system", "msg-1"), T0)
            found = {p.name: oct(mode(p)) for p in (tmp_path / "data").iterdir()}
            found["."] = oct(mode(tmp_path / "data"))
        assert set(found.values()) == {"0o600", "0o700"}, found
        assert {"audit.sqlite-wal", "audit.sqlite-shm"} <= set(found), found

    def test_side_file_left_readable_by_an_older_release_is_tightened(
        self, tmp_path: Path
    ) -> None:
        """An existing 0644 -wal beside the database is made 0600 before SQLite reopens it."""
        db = tmp_path / "x.sqlite"
        db.touch(mode=0o644)
        (tmp_path / "x.sqlite-wal").touch(mode=0o644)
        prepare_database(db)
        assert (mode(db), mode(tmp_path / "x.sqlite-wal")) == (0o600, 0o600)


@pytest.mark.usefixtures("permissive_umask")
class TestPrivatePaths:
    def test_new_directory_is_0700(self, tmp_path: Path) -> None:
        """A directory the agent makes is 0700 under a 0o022 umask."""
        assert mode(private_dir(tmp_path / "d")) == 0o700

    def test_loose_existing_directory_is_tightened_with_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An existing 0755 directory becomes 0700 and a warning names it and its old mode."""
        (tmp_path / "d").mkdir(mode=0o755)
        with caplog.at_level(logging.WARNING, logger="agent.private_files"):
            private_dir(tmp_path / "d")
        assert mode(tmp_path / "d") == 0o700
        assert [r.getMessage() for r in caplog.records] == [
            f"{tmp_path / 'd'} had mode 755 (other local users could read it): tightened to 700"]

    def test_private_file_keeps_its_contents(self, tmp_path: Path) -> None:
        """create_private on an existing loose file tightens it and leaves its bytes alone."""
        path = tmp_path / "f"
        path.write_bytes(b"kept")
        path.chmod(0o644)
        create_private(path)
        assert (mode(path), path.read_bytes()) == (0o600, b"kept")

    def test_atomic_write_replaces_a_loose_file_with_a_0600_one(self, tmp_path: Path) -> None:
        """The persisted manifest (and keyring, announcements) is 0600 even if it was 0644."""
        path = tmp_path / "manifest.json"
        path.write_bytes(b"old")
        path.chmod(0o644)
        write_private_atomically(path, b"new")
        assert (mode(path), path.read_bytes(), sorted(os.listdir(tmp_path))) == (
            0o600, b"new", ["manifest.json"])


def test_isa_agent_sets_umask_077_before_any_command(permissive_umask: None) -> None:
    """Every isa-agent command runs with umask 0o077, so anything a library creates is private."""
    main([])
    assert os.umask(0o022) == 0o077
