"""The agent's durable store: SQLite in WAL mode under ``data_dir`` (see ``sqlite`` for rules).

This ``__init__`` is the package's public surface; code outside imports ``agent.store`` only.
The modules inside:

- ``sqlite``   :class:`SqliteStore`, the store the agent runs on (outbox, inbox, seen ids)
- ``records``  the values it returns and the :class:`Store` protocol a fake also implements
- ``sql``      the schema and the SQL of each operation (plain functions of a connection), and
               the status events
- ``reviews``  the SQL of referrals held for review (``federation.review``)
- ``writer``   :class:`WriterThread`: one writer thread per SQLite file, with group commit
- ``file``     :class:`SqliteFile`: one file's writer thread and reader (the audit log's too)
- ``crypto``   :class:`PayloadSealer`: per-message data keys, wrapped by the key-encryption key
- ``migrations`` numbered schema migrations by ``PRAGMA user_version`` (the audit log's too)
- ``schema.sql`` the tables
"""

from __future__ import annotations

from agent.store.crypto import PayloadSealer
from agent.store.file import SqliteFile
from agent.store.migrations import Migration, migrate, schema_version
from agent.store.records import (
    CaseEvent,
    EnqueueResult,
    HistoryEntry,
    InboxItem,
    MessageStatus,
    OutgoingMessage,
    PayloadPurged,
    ReceiptOutcome,
    ReceiptRecord,
    ReviewHeld,
    ReviewRecord,
    SentEnvelope,
    StatusEvent,
    StatusEventKind,
    Store,
)
from agent.store.sqlite import DEFAULT_FILENAME, SqliteStore
from agent.store.writer import Job, WriterThread

__all__ = [
    "DEFAULT_FILENAME",
    "CaseEvent",
    "EnqueueResult",
    "HistoryEntry",
    "InboxItem",
    "Job",
    "MessageStatus",
    "Migration",
    "OutgoingMessage",
    "PayloadPurged",
    "PayloadSealer",
    "ReceiptOutcome",
    "ReceiptRecord",
    "ReviewHeld",
    "ReviewRecord",
    "SentEnvelope",
    "SqliteFile",
    "SqliteStore",
    "StatusEvent",
    "StatusEventKind",
    "Store",
    "WriterThread",
    "migrate",
    "schema_version",
]
