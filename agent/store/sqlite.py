"""The agent's durable store: SQLite in WAL mode, one file under ``data_dir``.

Rules:

1. Every durable write returns only after its COMMIT (``synchronous=FULL``): the API answers 202
   only once ``enqueue_outgoing`` returned, the consumer acks the broker only once
   ``accept_incoming`` returned. Writes run in one writer thread that commits concurrent writes
   together (group commit, ``agent/store/writer.py``); reads use a second connection.
2. Each write is atomic: the idempotency check, the outbox row and its history entry; the seen-id
   check, the inbox row and its data key. No half-written message, ever.
3. ``sqlite3`` errors never escape: failing to store (disk full, I/O error, unwritable file) is
   ``StoreUnavailable`` (HTTP 503); unknown ids are ``NotFound``.
4. Statuses move only through ``federation.outbox.transition``; events that leave the status
   unchanged (a duplicate receipt, a copy rejected for how it arrived) are kept in the history
   as ignored. ``receipts`` holds the receipt that settled the message, nothing else.
5. Duplicates never reach the case system twice: ``accept_incoming`` returns False for an
   envelope id already seen, and the inbox has one row per envelope id.
6. Inbox payloads are encrypted at rest with a per-message XSalsa20-Poly1305 key (``SecretBox``)
   kept in ``data_keys``; purging deletes the key (crypto-shredding; ``secure_delete=ON`` and a
   WAL checkpoint so the key bytes do not linger in the file). With a key-encryption key the
   data keys are wrapped too, so the file alone reveals nothing (``agent/store/crypto.py``).
   Requests held for review are sealed the same way, and shredded once the review is settled
   (``agent.store.reviews``).
7. A legal hold (``set_legal_hold``) suspends every shredding of a delivery's payload:
   ``erase_inbox_payload`` checks it and shreds in one transaction, so a hold placed a moment
   before is never overtaken (``LegalHold``, nothing changed). The hold and the case events the
   case system reports live in ``inbox_retention`` (migration 3).
8. Status events (delivered, rejected, expired, the reviews') are written in the job of the
   move they report, so the feed (``events_page``) and the webhook never miss or invent one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from agent.errors import LegalHold, NotFound
from agent.lifetime import AsyncResource
from agent.store import reviews
from agent.store.crypto import PayloadSealer
from agent.store.file import SqliteFile
from agent.store.records import (
    CaseEvent,
    EnqueueResult,
    InboxItem,
    MessageStatus,
    OutgoingMessage,
    PayloadPurged,
    ReceiptOutcome,
    ReviewHeld,
    ReviewRecord,
    SentEnvelope,
    StatusEvent,
)
from agent.store.sql import (
    MIGRATIONS,
    ReadJob,
    add_history,
    apply_event,
    apply_receipt,
    inbox_state,
    insert_outgoing,
    insert_seen,
    read_due,
    read_events,
    read_inbox_page,
    read_sent,
    read_status,
    set_retention_fact,
    shred,
    to_us,
)
from agent.store.writer import Job
from federation.canonical import canonical_json
from federation.outbox import Event, Status

__all__ = ["DEFAULT_FILENAME", "SqliteStore"]

DEFAULT_FILENAME = "agent-store.sqlite3"
T = TypeVar("T")


class SqliteStore(AsyncResource):
    """The SQLite implementation of :class:`agent.store.records.Store`.

    Use as ``async with SqliteStore(data_dir) as store: ...``. ``max_page_count`` caps the file
    size (tests use it to simulate a full disk); ``max_batch`` caps one group commit;
    ``key_encryption_key`` (32 bytes, kept outside the file) wraps the per-message data keys.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        filename: str = DEFAULT_FILENAME,
        max_batch: int = 256,
        max_page_count: int | None = None,
        key_encryption_key: bytes | None = None,
    ) -> None:
        self.path = Path(data_dir) / filename
        self._sealer = PayloadSealer(key_encryption_key)
        self._max_page_count = max_page_count
        self._file = SqliteFile(
            self.path, "store", migrations=MIGRATIONS, setup=self._setup, max_batch=max_batch
        )

    # -- lifetime --------------------------------------------------------------------------

    async def open(self) -> Self:
        await self._file.open()
        return self

    async def close(self) -> None:
        await self._file.close()

    @property
    def commits(self) -> int:
        """Transactions committed so far by this process (fewer than writes under load)."""
        return self._file.commits

    def _setup(self, writer: sqlite3.Connection) -> None:
        if self._max_page_count is not None:
            writer.execute(f"PRAGMA max_page_count = {int(self._max_page_count)}")
        self._check_kek(writer)

    def _check_kek(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE name = 'kek_check'").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO meta (name, value) VALUES ('kek_check', ?)",
                (self._sealer.check_value(),),
            )
        else:
            self._sealer.verify(bytes(row[0]))

    async def _write(self, job: Job[T], *, checkpoint: bool = False) -> T:
        return await self._file.write(job, checkpoint=checkpoint)

    async def _read(self, job: ReadJob[T]) -> T:
        return await self._file.read(job)

    # -- outbox ----------------------------------------------------------------------------

    async def enqueue_outgoing(
        self,
        *,
        message_id: str,
        client: str,
        idempotency_key: str | None,
        body_sha256: str,
        recipient: str,
        header: Mapping[str, Any],
        frame: bytes,
        now: datetime,
        expires_at: datetime,
    ) -> EnqueueResult:
        """Durably queue one envelope; an identical repeat (same client + key + body) gets the
        first id back, the same key with another body raises ``IdempotencyConflict``."""
        header_json = canonical_json(dict(header)).decode("utf-8")
        at, expires = to_us(now), to_us(expires_at)

        def job(conn: sqlite3.Connection) -> EnqueueResult:
            return insert_outgoing(
                conn,
                message_id=message_id,
                client=client,
                idempotency_key=idempotency_key,
                body_sha256=body_sha256,
                recipient=recipient,
                header_json=header_json,
                frame=frame,
                at=at,
                expires=expires,
            )

        return await self._write(job)

    async def due_outgoing(self, now: datetime, limit: int) -> Sequence[OutgoingMessage]:
        """Queued, unexpired messages whose next attempt is due, oldest first."""
        at = to_us(now)
        return await self._read(lambda conn: read_due(conn, at, limit))

    async def mark_sent(self, message_id: str, now: datetime) -> Status:
        """A broker confirmed the publish: queued -> sent (ignored if already settled)."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> Status:
            conn.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (message_id,))
            return apply_event(conn, message_id, Event.PUBLISHED, at, "confirmed by the broker")

        return await self._write(job)

    async def mark_attempt_failed(
        self, message_id: str, now: datetime, backoff: timedelta, detail: str
    ) -> None:
        """A publish attempt failed: count it and try again after ``backoff``."""
        at, retry_at = to_us(now), to_us(now + backoff)

        def job(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?"
                " WHERE id = ? RETURNING status, attempts",
                (retry_at, message_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no outgoing message {message_id!r}")
            add_history(conn, message_id, at, Status(row[0]), f"attempt {row[1]} failed: {detail}")

        await self._write(job)

    async def mark_failed(self, message_id: str, now: datetime, detail: str) -> Status:
        """The message can never be sent (e.g. unroutable): queued -> rejected."""
        at = to_us(now)
        return await self._write(
            lambda conn: apply_event(conn, message_id, Event.FAILED_LOCALLY, at, detail)
        )

    async def record_receipt(
        self,
        *,
        envelope_id: str,
        frame: bytes,
        status: Literal["delivered", "rejected"],
        reason: str,
        at: datetime,
    ) -> ReceiptOutcome:
        """Move the message's status for an accepted receipt (``federation.receipts`` rule 4)
        and keep the receipt that settled it; idempotent (rule 4)."""
        at_us = to_us(at)
        return await self._write(
            lambda conn: apply_receipt(conn, envelope_id, frame, status, reason, at_us)
        )

    async def sent_envelope(self, message_id: str) -> SentEnvelope:
        """Where an outgoing message went and its frame's hash, to check a receipt against."""
        return await self._read(lambda conn: read_sent(conn, message_id))

    async def expire_overdue(self, now: datetime) -> Sequence[str]:
        """Queued or sent messages past ``expires_at`` become expired; returns their ids (each
        needs a non-delivery report)."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM outbox WHERE status IN (?, ?) AND expires_at <= ?"
                    " ORDER BY expires_at",
                    (Status.QUEUED.value, Status.SENT.value, at),
                )
            ]
            for message_id in ids:
                apply_event(conn, message_id, Event.EXPIRED, at, "not collected before expires_at")
            return ids

        return await self._write(job)

    async def message_status(self, message_id: str) -> MessageStatus:
        return await self._read(lambda conn: read_status(conn, message_id))

    async def outbox_depth(self) -> int:
        """How many messages wait for a broker to take them (status queued)."""

        def job(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM outbox WHERE status = ?", (Status.QUEUED.value,)
            ).fetchone()
            return int(row[0])

        return await self._read(job)

    # -- inbox -----------------------------------------------------------------------------

    async def accept_incoming(
        self,
        *,
        envelope_id: str,
        sender: str,
        header: Mapping[str, Any],
        payload: bytes,
        now: datetime,
    ) -> bool:
        """Store a verified delivery, encrypted under a fresh data key; False if already seen."""
        ciphertext, key = self._sealer.seal(payload)
        header_json = canonical_json(dict(header)).decode("utf-8")
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> bool:
            if not insert_seen(conn, envelope_id, at):
                return False
            conn.execute(
                "INSERT INTO inbox (id, sender, header_json, ciphertext, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (envelope_id, sender, header_json, ciphertext, at),
            )
            conn.execute(
                "INSERT INTO data_keys (message_id, key) VALUES (?, ?)", (envelope_id, key)
            )
            return True

        return await self._write(job)

    async def mark_seen(self, envelope_id: str, now: datetime) -> bool:
        """Remember an envelope id without storing it (a rejected one); False if already seen."""
        at = to_us(now)
        return await self._write(lambda conn: insert_seen(conn, envelope_id, at))

    async def forget_seen_before(self, cutoff: datetime) -> int:
        """Drop seen ids older than ``cutoff`` (choose it past every envelope's expiry + skew:
        an older replay is rejected as expired anyway). Returns how many were dropped."""
        at = to_us(cutoff)
        return await self._write(
            lambda conn: conn.execute("DELETE FROM seen WHERE seen_at < ?", (at,)).rowcount
        )

    async def inbox_page(
        self, after_cursor: int, limit: int, *, unacked_only: bool = False
    ) -> Sequence[InboxItem]:
        """Deliveries with a cursor above ``after_cursor``, in cursor order."""
        return await self._read(
            lambda conn: read_inbox_page(conn, after_cursor, limit, unacked_only)
        )

    async def read_inbox_payload(self, message_id: str) -> bytes:
        """The decrypted payload; ``PayloadPurged`` once purged, ``NotFound`` if unknown."""

        def job(conn: sqlite3.Connection) -> tuple[bytes, bytes | None]:
            row = conn.execute(
                "SELECT i.ciphertext, k.key FROM inbox i"
                " LEFT JOIN data_keys k ON k.message_id = i.id WHERE i.id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no inbox message {message_id!r}")
            return bytes(row[0]), None if row[1] is None else bytes(row[1])

        ciphertext, key = await self._read(job)
        if key is None:
            raise PayloadPurged(f"the payload of {message_id!r} has been purged")
        return self._sealer.open(ciphertext, key, message_id)

    async def ack(self, message_id: str, now: datetime) -> bool:
        """The case system has the delivery (idempotent: the first ack time stays). True only
        for the call that acknowledged it (so that only the first is audited)."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> bool:
            changed = conn.execute(
                "UPDATE inbox SET acked_at = ? WHERE id = ? AND acked_at IS NULL", (at, message_id)
            ).rowcount
            if changed:
                return True
            if not conn.execute("SELECT 1 FROM inbox WHERE id = ?", (message_id,)).fetchone():
                raise NotFound(f"no inbox message {message_id!r}")
            return False

        return await self._write(job)

    async def purge_inbox_payload(self, message_id: str, now: datetime) -> None:
        """Crypto-shred a delivery's payload: its data key is deleted (idempotent)."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> None:
            if not conn.execute("SELECT 1 FROM inbox WHERE id = ?", (message_id,)).fetchone():
                raise NotFound(f"no inbox message {message_id!r}")
            shred(conn, [message_id], at)

        await self._write(job, checkpoint=True)

    async def erase_inbox_payload(self, message_id: str, now: datetime) -> bool:
        """Rule 7: crypto-shred the payload unless under legal hold (``LegalHold``); True when
        shredded now, False when it was already."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> bool:
            purged, held = inbox_state(conn, message_id)
            if held:
                raise LegalHold(f"inbox message {message_id!r} is under legal hold")
            if purged:
                return False
            shred(conn, [message_id], at)
            return True

        return await self._write(job, checkpoint=True)

    async def set_legal_hold(self, message_id: str, held: bool, now: datetime) -> bool:
        """Rule 7: place (``held``) or release the hold; True when that changed anything."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> bool:
            was = inbox_state(conn, message_id)[1]
            if was == held:
                return False
            set_retention_fact(conn, message_id, "held_at", at if held else None)
            return True

        return await self._write(job)

    async def record_case_event(self, message_id: str, event: CaseEvent, now: datetime) -> None:
        """The case system reports ``event`` on the delivery's case now (the latest is kept)."""
        at = to_us(now)
        column = "case_closed_at" if event == "case_closed" else "last_activity_at"

        def job(conn: sqlite3.Connection) -> None:
            inbox_state(conn, message_id)  # NotFound for an unknown delivery
            set_retention_fact(conn, message_id, column, at)

        await self._write(job)

    async def purge_received_before(self, cutoff: datetime, now: datetime) -> Sequence[str]:
        """Retention: crypto-shred every payload received before ``cutoff``, acked or not, but
        not one under legal hold (rule 7). Returns the ids purged now (each deserves an audit
        entry)."""
        before, at = to_us(cutoff), to_us(now)

        def job(conn: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM inbox WHERE received_at < ? AND purged_at IS NULL AND id NOT"
                    " IN (SELECT message_id FROM inbox_retention WHERE held_at IS NOT NULL)"
                    " ORDER BY cursor",
                    (before,),
                )
            ]
            shred(conn, ids, at)
            return ids

        return await self._write(job, checkpoint=True)

    # -- retention (outbox) -----------------------------------------------------------------

    async def purge_delivered_frames(self, now: datetime, limit: int = 64) -> Sequence[str]:
        """Retention: delete the envelope frames of up to ``limit`` messages whose delivery
        receipt arrived (status, history and receipt stay). Returns the ids purged now
        (idempotent). Bounded, so that a pass after a burst never holds the writer for long:
        the caller repeats while it gets ``limit`` ids back."""
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> list[str]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM outbox WHERE status = ? AND length(frame) > 0 LIMIT ?",
                    (Status.DELIVERED.value, limit),
                )
            ]
            for message_id in ids:
                conn.execute("UPDATE outbox SET frame = X'' WHERE id = ?", (message_id,))
                add_history(conn, message_id, at, Status.DELIVERED, "envelope purged (retention)")
            return ids

        # No WAL checkpoint here, unlike the shredding of inbox payloads: a frame is sealed for
        # the recipient and this agency cannot open it, so its bytes lingering in the WAL until
        # the next checkpoint leak nothing; truncating the WAL after every batch stalled the
        # writer for 20-40 ms each time, and every submit queued behind it.
        return await self._write(job)

    # -- reviews (agent.store.reviews) -------------------------------------------------------

    async def hold_for_review(
        self,
        review: ReviewRecord,
        *,
        idempotency_key: str | None,
        body_sha256: str,
        request: bytes,
    ) -> ReviewHeld:
        """Hold ``review`` pending, its request sealed under a fresh data key (rule 6)."""
        ciphertext, key = self._sealer.seal(request)
        return await self._write(
            lambda conn: reviews.insert_review(
                conn,
                review,
                idempotency_key=idempotency_key,
                body_sha256=body_sha256,
                request=ciphertext,
                data_key=key,
            )
        )

    async def review(self, review_id: str) -> ReviewRecord:
        return await self._read(lambda conn: reviews.read_review(conn, review_id))

    async def review_request(self, review_id: str) -> bytes:
        ciphertext, key = await self._read(lambda conn: reviews.read_request(conn, review_id))
        if key is None:
            raise PayloadPurged(f"the request held for review {review_id!r} has been shredded")
        return self._sealer.open(ciphertext, key, review_id)

    async def reviews_page(
        self, after_cursor: int, limit: int, *, pending_only: bool = True
    ) -> Sequence[ReviewRecord]:
        return await self._read(
            lambda conn: reviews.read_reviews(conn, after_cursor, limit, pending_only)
        )

    async def narrow_review(
        self, review_id: str, keep: tuple[str, ...], *, by: str, at: datetime
    ) -> ReviewRecord:
        at_us = to_us(at)
        return await self._write(lambda conn: reviews.narrow(conn, review_id, keep, at_us))

    async def return_review(
        self, review_id: str, reason: str, *, by: str, at: datetime
    ) -> ReviewRecord:
        at_us = to_us(at)
        return await self._write(
            lambda conn: reviews.return_(conn, review_id, reason, by, at_us), checkpoint=True
        )

    async def approve_review(
        self,
        review_id: str,
        *,
        by: str,
        at: datetime,
        message_id: str,
        header: Mapping[str, Any],
        frame: bytes,
        expires_at: datetime,
    ) -> ReviewRecord:
        header_json = canonical_json(dict(header)).decode("utf-8")
        at_us, expires = to_us(at), to_us(expires_at)
        return await self._write(
            lambda conn: reviews.approve(
                conn,
                review_id,
                by=by,
                at=at_us,
                message_id=message_id,
                header_json=header_json,
                frame=frame,
                expires=expires,
            ),
            checkpoint=True,
        )

    async def escalate_overdue_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        at = to_us(now)
        return await self._write(lambda conn: reviews.escalate_overdue(conn, at))

    async def expire_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        at = to_us(now)
        return await self._write(lambda conn: reviews.expire_overdue_reviews(conn, at))

    # -- status events ------------------------------------------------------------------------

    async def events_page(self, after_cursor: int, limit: int) -> Sequence[StatusEvent]:
        return await self._read(lambda conn: read_events(conn, after_cursor, limit))

    async def unpushed_events(self, limit: int) -> Sequence[StatusEvent]:
        return await self._read(lambda conn: read_events(conn, 0, limit, unpushed=True))

    async def mark_event_pushed(self, event_id: str, now: datetime) -> None:
        at = to_us(now)

        def job(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE events SET pushed_at = COALESCE(pushed_at, ?) WHERE id = ?",
                (at, event_id),
            ).rowcount
            if not changed:
                raise NotFound(f"no status event {event_id!r}")

        await self._write(job)
