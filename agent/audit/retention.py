"""Retention of the audit log: remove whole prefixes of the chain behind a signed anchor.

Rules:
1. Only entries older than the cutoff go, and only as a prefix: the last of them is signed as a
   checkpoint and kept (in ``meta``) as the anchor the rest verifies from.
2. Their subject index rows and the checkpoints before the anchor go with them.
3. ``prune`` is a write job (it runs in the log's writer thread, in its transaction); the purge
   is then recorded as an entry of its own by :meth:`agent.audit.AuditLog.prune_before`
   (:func:`purge_event`).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from agent.audit.chain import to_us, write_checkpoint
from agent.audit.events import AuditEvent
from federation.audit_chain import Checkpoint
from federation.canonical import format_time
from federation.keys import SigningKey

__all__ = ["prune", "purge_event"]


def prune(
    conn: sqlite3.Connection, key: SigningKey, *, agency: str, cutoff: datetime, now: datetime
) -> int:
    """Rules 1, 2: remove the entries before ``cutoff``; returns how many were removed."""
    row = conn.execute(
        "SELECT seq, entry_hash FROM entries WHERE at_us < ? ORDER BY seq DESC LIMIT 1",
        (to_us(cutoff),),
    ).fetchone()
    if row is None:
        return 0
    anchor = write_checkpoint(
        conn, key, agency=agency, seq=int(row[0]), digest=bytes(row[1]), at=now
    )
    return _delete_through(conn, anchor)


def _delete_through(conn: sqlite3.Connection, anchor: Checkpoint) -> int:
    removed = conn.execute("DELETE FROM entries WHERE seq <= ?", (anchor.seq,)).rowcount
    conn.execute("DELETE FROM subject_index WHERE seq <= ?", (anchor.seq,))
    conn.execute("DELETE FROM checkpoints WHERE seq < ?", (anchor.seq,))
    conn.execute(
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('anchor', ?)",
        (anchor.model_dump_json().encode("utf-8"),),
    )
    return int(removed)


def purge_event(removed: int, cutoff: datetime) -> AuditEvent:
    """Rule 3: the entry recording a pruning."""
    return AuditEvent(
        "purge",
        "agent",
        outcome="audit_entries_removed",
        detail=f"{removed} audit entries before {format_time(cutoff)} removed;"
        " a signed checkpoint anchors the rest",
    )
