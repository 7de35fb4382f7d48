"""The audit log's file format: its tables, the exact bytes of an entry, and the chain's ends.

Rules:
1. ``entries`` holds each entry's chained bytes (``entry_data``) and hash; ``subject_index`` the
   keyed subject hashes; ``message_context`` what a message's later entries inherit;
   ``checkpoints`` the signed checkpoints; ``meta`` the retention anchor. The file's schema
   moves forward by the numbered ``MIGRATIONS`` (:mod:`agent.store.migrations`); 1 is the
   schema of release 48272d7, and a change is a new migration at the end, never an edit.
2. ``entry_data`` is exactly ``federation.audit_chain.entry_bytes`` of the validated entry (a
   property test holds them equal), built without a pydantic round trip per entry. It writes
   version 2 entries (the person accountable and their justification); the version 1 entries
   of older releases stay as they are and still verify (``federation.audit_chain`` rule 1).
3. The chain's tail is its last entry, or the anchor when retention removed every entry, or
   the genesis hash for an empty log. Plain functions of a connection: no I/O of their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.store import Migration
from federation.audit_chain import GENESIS, Checkpoint, sign_checkpoint
from federation.canonical import canonical_json, format_time
from federation.keys import SigningKey

__all__ = [
    "MIGRATIONS",
    "SCHEMA",
    "blob",
    "entry_data",
    "read_anchor",
    "read_tail",
    "to_us",
    "write_checkpoint",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq         INTEGER PRIMARY KEY,
    at_us       INTEGER NOT NULL,
    message_id  TEXT,
    data        BLOB NOT NULL,
    entry_hash  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_at ON entries (at_us);
CREATE TABLE IF NOT EXISTS subject_index (
    key  TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_context (
    message_id  TEXT PRIMARY KEY,
    context     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq   INTEGER PRIMARY KEY,
    body  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = ((1, SCHEMA),)


def blob(value: bytes | str) -> bytes:
    """A BLOB column as bytes (a tampered row may hold TEXT: it must still be readable)."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def entry_data(fields: Mapping[str, Any], *, seq: int, at: datetime, agency: str) -> bytes:
    """The chained bytes of an entry: exactly ``entry_bytes(AuditEntry(...))`` (a property test
    holds them equal), built straight from the fields this module made, without a pydantic
    validation and dump per entry (the audit log was a quarter of the pipeline's CPU)."""
    return canonical_json({**fields, "v": 2, "seq": seq, "at": format_time(at), "agency": agency})


def read_anchor(conn: sqlite3.Connection) -> Checkpoint | None:
    row = conn.execute("SELECT value FROM meta WHERE name = 'anchor'").fetchone()
    return None if row is None else Checkpoint.model_validate_json(blob(row[0]))


def read_tail(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """Rule 3: the seq and hash the next entry chains to."""
    row = conn.execute("SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), bytes(row[1])
    anchor = read_anchor(conn)
    if anchor is not None:
        return anchor.seq, bytes.fromhex(anchor.entry_hash)
    return 0, GENESIS


def write_checkpoint(
    conn: sqlite3.Connection,
    key: SigningKey,
    *,
    agency: str,
    seq: int,
    digest: bytes,
    at: datetime,
) -> Checkpoint:
    """Sign entry ``seq`` (hash ``digest``) as a checkpoint and store it."""
    checkpoint = sign_checkpoint(key, agency=agency, seq=seq, entry_hash=digest, at=at)
    conn.execute(
        "INSERT OR IGNORE INTO checkpoints (seq, body) VALUES (?, ?)",
        (seq, checkpoint.model_dump_json().encode("utf-8")),
    )
    return checkpoint
