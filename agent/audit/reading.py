"""Reading the audit log: verify, export, subject-access search, and where the chain ends.

Rules:
1. Plain functions of a read connection, each run in one snapshot (``AuditLog`` runs them on
   its reader); they never write.
2. ``verify`` returns the first broken entry (``federation.audit_chain.first_break``) or None;
   an unreadable checkpoint or anchor is a break at 0, never a traceback.
3. ``search`` finds entries by keyed subject hash only; it returns how each one matched
   (``name+dob`` or ``name``), oldest first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from nacl.signing import VerifyKey

from agent.audit.chain import blob, read_anchor, read_tail, to_us
from federation.audit_chain import AuditEntry, Break, Checkpoint, StoredEntry, first_break
from federation.subjects import SearchKeys

__all__ = ["LogState", "SubjectMatch", "count", "entries", "hash_at", "search", "state", "verify"]


@dataclass(frozen=True, slots=True)
class LogState:
    """The log's last entry (``end``, ``head`` hash), the last seq a signed checkpoint or the
    retention anchor covers (``covered``), and the anchor's seq (0 without one)."""

    end: int
    head: bytes
    covered: int
    anchor: int


class SubjectMatch(AuditEntry):
    """An entry found by a subject search, with how it matched (``name+dob`` or ``name``)."""

    match: str


def verify(conn: sqlite3.Connection, key: VerifyKey) -> Break | None:
    """Rule 2: the first broken entry, or None when the whole log holds."""
    try:
        checkpoints = [
            Checkpoint.model_validate_json(blob(r[0]))
            for r in conn.execute("SELECT body FROM checkpoints ORDER BY seq")
        ]
        rows = conn.execute("SELECT seq, data, entry_hash FROM entries ORDER BY rowid")
        stored = (StoredEntry(int(r[0]), blob(r[1]), blob(r[2])) for r in rows)
        return first_break(stored, checkpoints, key, anchor=read_anchor(conn))
    except ValueError as exc:  # an unreadable checkpoint or anchor
        return Break(0, f"a checkpoint is not readable ({exc.__class__.__name__})")


def entries(
    conn: sqlite3.Connection, since: datetime | None, until: datetime | None
) -> list[AuditEntry]:
    """Entries with ``since <= at < until``, in order (for export)."""
    low = to_us(since) if since is not None else -(2**62)
    high = to_us(until) if until is not None else 2**62
    rows = conn.execute(
        "SELECT data FROM entries WHERE at_us >= ? AND at_us < ? ORDER BY seq", (low, high)
    )
    return [AuditEntry.model_validate_json(blob(r[0])) for r in rows]


def search(conn: sqlite3.Connection, keys: SearchKeys) -> list[SubjectMatch]:
    """Rule 3: every entry carrying one of ``keys``, oldest first, with how it matched."""
    found: dict[int, str] = {}
    for key, label in ((keys.name_only, "name"), (keys.full, "name+dob")):
        if key is None:
            continue
        for (seq,) in conn.execute("SELECT seq FROM subject_index WHERE key = ?", (key,)):
            found[int(seq)] = label
    return list(_matches(conn, found))


def _matches(conn: sqlite3.Connection, found: dict[int, str]) -> Iterator[SubjectMatch]:
    for seq in sorted(found):
        row = conn.execute("SELECT data FROM entries WHERE seq = ?", (seq,)).fetchone()
        if row is not None:
            entry = AuditEntry.model_validate_json(blob(row[0]))
            yield SubjectMatch.model_validate(
                {**entry.model_dump(), "match": found[seq]}, strict=False
            )


def state(conn: sqlite3.Connection) -> LogState:
    """Where the log ends, what its checkpoints cover and its anchor (for ``verify``)."""
    end, head = read_tail(conn)
    anchor = read_anchor(conn)
    row = conn.execute("SELECT max(seq) FROM checkpoints").fetchone()
    anchor_seq = 0 if anchor is None else anchor.seq
    covered = max(anchor_seq, int(row[0] or 0) if row is not None else 0)
    return LogState(end, head, covered, anchor_seq)


def hash_at(conn: sqlite3.Connection, seq: int) -> bytes | None:
    """The stored hash of entry ``seq``, or None if there is no such entry."""
    row = conn.execute("SELECT entry_hash FROM entries WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else blob(row[0])


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
