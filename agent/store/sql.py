"""The SQL the store runs inside its jobs: status moves, history, and the read queries.

Rules: every function here takes an open ``sqlite3.Connection`` and runs in the thread that owns
it (the writer for writes, the reader for reads); none commits (the writer thread does that).
Times in the database are INTEGER microseconds since the Unix epoch, UTC. A status move that the
case system is told about (delivered, rejected, expired; the reviews' in ``agent.store.reviews``)
writes its ``events`` row in the same job, so the event commits with the move or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import IdempotencyConflict, NotFound
from agent.store.migrations import Migration
from agent.store.records import (
    EnqueueResult,
    HistoryEntry,
    InboxItem,
    MessageStatus,
    OutgoingMessage,
    ReceiptOutcome,
    ReceiptRecord,
    SentEnvelope,
    StatusEvent,
    StatusEventKind,
)
from federation.outbox import Event, Status, transition
from federation.receipts import receipt_event

__all__ = [
    "INBOX_RETENTION",
    "MIGRATIONS",
    "REVIEWS_AND_EVENTS",
    "SCHEMA",
    "ReadJob",
    "add_history",
    "apply_event",
    "apply_receipt",
    "connect",
    "emit_event",
    "from_us",
    "in_snapshot",
    "inbox_state",
    "insert_outgoing",
    "insert_seen",
    "read_due",
    "read_events",
    "read_inbox_page",
    "read_sent",
    "read_status",
    "set_retention_fact",
    "shred",
    "to_us",
]

T = TypeVar("T")
ReadJob = Callable[[sqlite3.Connection], T]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BUSY_TIMEOUT_MS = 10_000


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (naive ones are refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times must be timezone-aware")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def in_snapshot(job: ReadJob[T], conn: sqlite3.Connection) -> T:
    """Run a read job in one read transaction, so its queries see one consistent snapshot."""
    conn.execute("BEGIN")
    try:
        return job(conn)
    finally:
        conn.execute("COMMIT")


def add_history(
    conn: sqlite3.Connection, message_id: str, at: int, status: Status, detail: str
) -> None:
    conn.execute(
        "INSERT INTO history (message_id, at, status, detail) VALUES (?, ?, ?, ?)",
        (message_id, at, status.value, detail),
    )


def apply_event(
    conn: sqlite3.Connection,
    message_id: str,
    event: Event,
    at: int,
    detail: str,
    reason: str | None = None,
) -> Status:
    """Move one outgoing message through the state machine and write its history; a move to
    delivered, rejected (``reason``: its code) or expired is also a status event."""
    row = conn.execute("SELECT status FROM outbox WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"no outgoing message {message_id!r}")
    current = Status(row[0])
    new = transition(current, event)
    if new is current:
        add_history(conn, message_id, at, current, f"ignored ({event.value}): {detail}")
        return current
    conn.execute("UPDATE outbox SET status = ? WHERE id = ?", (new.value, message_id))
    add_history(conn, message_id, at, new, detail)
    if new in _TOLD:
        _emit_status(conn, message_id, new, at, reason)
    return new


#: The outbox statuses the case system is told about, as status events.
_TOLD: dict[Status, StatusEventKind] = {
    Status.DELIVERED: "delivered",
    Status.REJECTED: "rejected",
    Status.EXPIRED: "expired",
}


def _emit_status(
    conn: sqlite3.Connection, message_id: str, status: Status, at: int, reason: str | None
) -> None:
    client, recipient, header_json = conn.execute(
        "SELECT client, recipient, header_json FROM outbox WHERE id = ?", (message_id,)
    ).fetchone()
    header = _header(header_json)
    isa = header.get("isa")
    emit_event(
        conn, _TOLD[status], at, client=client, recipient=recipient, message_id=message_id,
        isa_id=isa.get("id") if isinstance(isa, dict) else None,
        purpose=header.get("purpose"), message_type=header.get("type"), reason=reason,
    )  # fmt: skip


def emit_event(
    conn: sqlite3.Connection,
    event: StatusEventKind,
    at: int,
    *,
    client: str,
    recipient: str,
    message_id: str | None = None,
    review_id: str | None = None,
    isa_id: str | None = None,
    purpose: str | None = None,
    message_type: str | None = None,
    reason: str | None = None,
) -> None:
    """Append one status event (in the caller's job: it commits with the move it reports)."""
    conn.execute(
        "INSERT INTO events (id, event, at, client, message_id, review_id, recipient, isa_id,"
        " purpose, message_type, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (str(uuid.uuid4()), event, at, client, message_id, review_id, recipient, isa_id,
         purpose, message_type, reason),
    )  # fmt: skip


_EVENT_COLUMNS = (
    "cursor, id, event, at, client, message_id, review_id, recipient, isa_id, purpose,"
    " message_type, reason"
)


def read_events(
    conn: sqlite3.Connection, after_cursor: int, limit: int, *, unpushed: bool = False
) -> list[StatusEvent]:
    """Events with a cursor above ``after_cursor`` (or, ``unpushed``, those the webhook has not
    taken), in cursor order."""
    where = "pushed_at IS NULL AND cursor > ?" if unpushed else "cursor > ?"
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY cursor LIMIT ?",  # noqa: S608
        (after_cursor, limit),
    ).fetchall()
    return [
        StatusEvent(
            cursor=r[0], id=r[1], event=r[2], at=from_us(r[3]), client=r[4], message_id=r[5],
            review_id=r[6], recipient=r[7], isa_id=r[8], purpose=r[9], message_type=r[10],
            reason=r[11],
        )
        for r in rows
    ]  # fmt: skip


def shred(conn: sqlite3.Connection, message_ids: Sequence[str], at: int) -> None:
    """Delete the data keys of these inbox messages and mark them purged (idempotent)."""
    for message_id in message_ids:
        conn.execute(
            "UPDATE inbox SET purged_at = COALESCE(purged_at, ?) WHERE id = ?", (at, message_id)
        )
        conn.execute("DELETE FROM data_keys WHERE message_id = ?", (message_id,))


def insert_outgoing(
    conn: sqlite3.Connection,
    *,
    message_id: str,
    client: str,
    idempotency_key: str | None,
    body_sha256: str,
    recipient: str,
    header_json: str,
    frame: bytes,
    at: int,
    expires: int,
) -> EnqueueResult:
    """The idempotency check, the outbox row and its first history entry (one job)."""
    if idempotency_key is not None:
        row = conn.execute(
            "SELECT id, body_sha256, status FROM outbox WHERE client = ? AND idempotency_key = ?",
            (client, idempotency_key),
        ).fetchone()
        if row is not None:
            if row[1] != body_sha256:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used with another body"
                )
            return EnqueueResult(id=row[0], status=Status(row[2]), created=False)
    if conn.execute("SELECT 1 FROM outbox WHERE id = ?", (message_id,)).fetchone():
        raise IdempotencyConflict(f"message id {message_id!r} is already in the outbox")
    conn.execute(
        "INSERT INTO outbox (id, client, idempotency_key, body_sha256, recipient, header_json,"
        " frame, status, attempts, next_attempt_at, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        (message_id, client, idempotency_key, body_sha256, recipient, header_json, frame,
         Status.QUEUED.value, at, at, expires),
    )  # fmt: skip
    add_history(conn, message_id, at, Status.QUEUED, "accepted into the outbox")
    return EnqueueResult(id=message_id, status=Status.QUEUED, created=True)


def apply_receipt(
    conn: sqlite3.Connection, envelope_id: str, frame: bytes, status: str, reason: str, at: int
) -> ReceiptOutcome:
    """Move the status for an accepted receipt; keep the receipt that settled the message (a
    delivery overriding a rejection replaces it; receipts that change nothing are not kept)."""
    row = conn.execute("SELECT status FROM outbox WHERE id = ?", (envelope_id,)).fetchone()
    if row is None:
        return "unknown"
    detail = f"receipt: {status}" + (f" ({reason})" if reason else "")
    event = receipt_event("delivered" if status == "delivered" else "rejected", reason or None)
    before = Status(row[0])
    if apply_event(conn, envelope_id, event, at, detail, reason or None) is before:
        return "ignored"
    conn.execute(
        "INSERT OR REPLACE INTO receipts (envelope_id, frame, status, reason, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (envelope_id, frame, status, reason, at),
    )
    return "applied"


def read_sent(conn: sqlite3.Connection, message_id: str) -> SentEnvelope:
    cursor = conn.execute("SELECT recipient, frame FROM outbox WHERE id = ?", (message_id,))
    row = cursor.fetchone()
    if row is None:
        raise NotFound(f"no outgoing message {message_id!r}")
    frame = bytes(row[1])
    digest = hashlib.sha256(frame).hexdigest() if frame else None
    return SentEnvelope(id=message_id, recipient=row[0], frame_sha256=digest)


def read_due(conn: sqlite3.Connection, at: int, limit: int) -> list[OutgoingMessage]:
    rows = conn.execute(
        "SELECT id, recipient, frame, attempts, expires_at, header_json FROM outbox"
        " WHERE status = ? AND next_attempt_at <= ? AND expires_at > ?"
        " ORDER BY next_attempt_at, created_at LIMIT ?",
        (Status.QUEUED.value, at, at, limit),
    ).fetchall()
    return [
        OutgoingMessage(
            id=r[0],
            recipient=r[1],
            frame=bytes(r[2]),
            attempts=r[3],
            expires_at=from_us(r[4]),
            header=json.loads(r[5]),
        )
        for r in rows
    ]


def read_status(conn: sqlite3.Connection, message_id: str) -> MessageStatus:
    row = conn.execute(
        "SELECT recipient, status, attempts, header_json, created_at, expires_at"
        " FROM outbox WHERE id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no outgoing message {message_id!r}")
    history = tuple(
        HistoryEntry(at=from_us(h[0]), status=Status(h[1]), detail=h[2])
        for h in conn.execute(
            "SELECT at, status, detail FROM history WHERE message_id = ? ORDER BY seq",
            (message_id,),
        )
    )
    return MessageStatus(
        id=message_id,
        recipient=row[0],
        status=Status(row[1]),
        attempts=row[2],
        header=_header(row[3]),
        created_at=from_us(row[4]),
        expires_at=from_us(row[5]),
        history=history,
        receipt=_read_receipt(conn, message_id),
    )


def _read_receipt(conn: sqlite3.Connection, envelope_id: str) -> ReceiptRecord | None:
    row = conn.execute(
        "SELECT frame, status, reason, at FROM receipts WHERE envelope_id = ?", (envelope_id,)
    ).fetchone()
    if row is None:
        return None
    return ReceiptRecord(
        envelope_id=envelope_id,
        frame=bytes(row[0]),
        status=row[1],
        reason=row[2],
        at=from_us(row[3]),
    )


def read_inbox_page(
    conn: sqlite3.Connection, after_cursor: int, limit: int, unacked_only: bool
) -> list[InboxItem]:
    rows = conn.execute(
        "SELECT i.cursor, i.id, i.sender, i.header_json, i.received_at, i.acked_at,"
        " i.purged_at, r.held_at, r.case_closed_at, r.last_activity_at FROM inbox i"
        " LEFT JOIN inbox_retention r ON r.message_id = i.id"
        " WHERE i.cursor > ? AND (? = 0 OR i.acked_at IS NULL) ORDER BY i.cursor LIMIT ?",
        (after_cursor, int(unacked_only), limit),
    ).fetchall()
    return [
        InboxItem(
            cursor=r[0],
            id=r[1],
            sender=r[2],
            header=_header(r[3]),
            received_at=from_us(r[4]),
            acked_at=_maybe_time(r[5]),
            purged=r[6] is not None,
            held=r[7] is not None,
            case_closed_at=_maybe_time(r[8]),
            last_activity_at=_maybe_time(r[9]),
        )
        for r in rows
    ]


def _maybe_time(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def inbox_state(conn: sqlite3.Connection, message_id: str) -> tuple[bool, bool]:
    """Whether the delivery is purged, and whether it is under legal hold; NotFound if none."""
    row = conn.execute(
        "SELECT i.purged_at, r.held_at FROM inbox i"
        " LEFT JOIN inbox_retention r ON r.message_id = i.id WHERE i.id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no inbox message {message_id!r}")
    return row[0] is not None, row[1] is not None


def set_retention_fact(
    conn: sqlite3.Connection, message_id: str, column: str, at: int | None
) -> None:
    """One column of a delivery's retention facts (``held_at``, ``case_closed_at``,
    ``last_activity_at``: a fixed name, never client input)."""
    assert column in _RETENTION_FACTS
    conn.execute(
        f"INSERT INTO inbox_retention (message_id, {column}) VALUES (?, ?)"  # noqa: S608
        f" ON CONFLICT (message_id) DO UPDATE SET {column} = excluded.{column}",
        (message_id, at),
    )


_RETENTION_FACTS = frozenset({"held_at", "case_closed_at", "last_activity_at"})


def _header(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def insert_seen(conn: sqlite3.Connection, envelope_id: str, at: int) -> bool:
    """Remember an envelope id; False if it was already seen."""
    return bool(
        conn.execute(
            "INSERT OR IGNORE INTO seen (envelope_id, seen_at) VALUES (?, ?)", (envelope_id, at)
        ).rowcount
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the store's per-connection pragmas (FULL sync, secure delete)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        raise
    return conn


SCHEMA = resources.files("agent.store").joinpath("schema.sql").read_text(encoding="utf-8")

#: Migration 2: referrals held for review (``agent.store.reviews``) and the status events the
#: case system reads (``GET /v1/events``) and the webhook pushes (``pushed_at``).
REVIEWS_AND_EVENTS = """
CREATE TABLE reviews (
    cursor           INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    client           TEXT NOT NULL,
    idempotency_key  TEXT,
    body_sha256      TEXT NOT NULL,
    submitter        TEXT NOT NULL,
    role             TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    summary_json     TEXT NOT NULL,
    request          BLOB NOT NULL,
    data_key         BLOB,
    state            TEXT NOT NULL,
    narrowed_json    TEXT,
    held_at          INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    escalated_at     INTEGER,
    decided_at       INTEGER,
    decided_by       TEXT,
    note             TEXT NOT NULL DEFAULT '',
    message_id       TEXT,
    UNIQUE (client, idempotency_key)
);
CREATE INDEX reviews_pending ON reviews (state, due_at);
CREATE TABLE events (
    cursor        INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    event         TEXT NOT NULL,
    at            INTEGER NOT NULL,
    client        TEXT NOT NULL,
    message_id    TEXT,
    review_id     TEXT,
    recipient     TEXT NOT NULL,
    isa_id        TEXT,
    purpose       TEXT,
    message_type  TEXT,
    reason        TEXT,
    pushed_at     INTEGER
);
CREATE INDEX events_unpushed ON events (cursor) WHERE pushed_at IS NULL;
"""

#: Migration 3: what retention needs to know of a delivery beyond its receipt (issue 18.5): a
#: legal hold, and the case closure and activity the case system reported. One row per delivery
#: that has any; a delivery without one is not held and reported nothing.
INBOX_RETENTION = """
CREATE TABLE IF NOT EXISTS inbox_retention (
    message_id        TEXT PRIMARY KEY,
    held_at           INTEGER,
    case_closed_at    INTEGER,
    last_activity_at  INTEGER
);
"""

#: The store's numbered migrations (agent.store.migrations): 1 is release 48272d7's schema.
MIGRATIONS: tuple[Migration, ...] = ((1, SCHEMA), (2, REVIEWS_AND_EVENTS), (3, INBOX_RETENTION))
