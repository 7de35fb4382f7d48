"""An in-memory :class:`agent.store.records.Store` for tests of the layers above the store.

Rules:

1. It keeps the same promises as the SQLite store, checked by the same contract suite
   (``tests/unit/agent/test_store_contract.py``), so it cannot drift: idempotency, dedupe,
   statuses only through ``federation.outbox.transition``, cursor paging, ack, purge.
2. Nothing is durable and nothing is encrypted: never use it outside tests and demos.
3. Each method body runs without an ``await`` in the middle, so each is atomic on the event loop.
4. Reviews and status events keep the SQLite store's promises too (the contract suite in
   ``tests/unit/agent/test_store_reviews.py``): states only through ``federation.review.act``,
   an event with every move it reports, the held request gone once settled.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.errors import IdempotencyConflict, LegalHold, NotFound
from agent.store import (
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
)
from federation.outbox import Event, Status, is_settled, transition
from federation.receipts import receipt_event
from federation.review import ReviewAction, ReviewState, act

_TOLD: dict[Status, StatusEventKind] = {
    Status.DELIVERED: "delivered",
    Status.REJECTED: "rejected",
    Status.EXPIRED: "expired",
}

__all__ = ["MemoryStore"]


@dataclass
class _Outgoing:
    id: str
    client: str
    key: str | None
    body_sha256: str
    recipient: str
    header: dict[str, Any]
    frame: bytes
    status: Status
    created_at: datetime
    expires_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass
class _Incoming:
    item: InboxItem
    payload: bytes | None


class MemoryStore:
    """The in-memory fake Store (see the module rules)."""

    def __init__(self) -> None:
        self._outbox: dict[str, _Outgoing] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._receipts: dict[str, ReceiptRecord] = {}
        self._inbox: dict[str, _Incoming] = {}
        self._seen: dict[str, datetime] = {}
        self._cursor = 0
        self._reviews: dict[str, ReviewRecord] = {}
        self._review_keys: dict[tuple[str, str], tuple[str, str]] = {}
        self._requests: dict[str, bytes] = {}
        self._events: list[StatusEvent] = []
        self._pushed: set[str] = set()

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
        if idempotency_key is not None and (client, idempotency_key) in self._keys:
            first = self._outbox[self._keys[(client, idempotency_key)]]
            if first.body_sha256 != body_sha256:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used with another body"
                )
            return EnqueueResult(id=first.id, status=first.status, created=False)
        if message_id in self._outbox:
            raise IdempotencyConflict(f"message id {message_id!r} is already in the outbox")
        row = _Outgoing(
            message_id,
            client,
            idempotency_key,
            body_sha256,
            recipient,
            dict(header),
            frame,
            Status.QUEUED,
            now,
            expires_at,
            now,
        )
        row.history.append(
            HistoryEntry(at=now, status=Status.QUEUED, detail="accepted into the outbox")
        )
        self._outbox[message_id] = row
        if idempotency_key is not None:
            self._keys[(client, idempotency_key)] = message_id
        return EnqueueResult(id=message_id, status=Status.QUEUED, created=True)

    async def due_outgoing(self, now: datetime, limit: int) -> Sequence[OutgoingMessage]:
        due = sorted(
            (
                r
                for r in self._outbox.values()
                if r.status is Status.QUEUED and r.next_attempt_at <= now < r.expires_at
            ),
            key=lambda r: (r.next_attempt_at, r.created_at),
        )
        return [
            OutgoingMessage(
                id=r.id,
                recipient=r.recipient,
                frame=r.frame,
                attempts=r.attempts,
                expires_at=r.expires_at,
                header=dict(r.header),
            )
            for r in due[:limit]
        ]

    def _row(self, message_id: str) -> _Outgoing:
        try:
            return self._outbox[message_id]
        except KeyError:
            raise NotFound(f"no outgoing message {message_id!r}") from None

    def _apply(
        self, row: _Outgoing, event: Event, at: datetime, detail: str, reason: str | None = None
    ) -> Status:
        new = transition(row.status, event)
        moved = new is not row.status
        if not moved:
            detail = f"ignored ({event.value}): {detail}"
        row.status = new
        row.history.append(HistoryEntry(at=at, status=new, detail=detail))
        if moved and new in _TOLD:
            isa = row.header.get("isa")
            self._emit(
                _TOLD[new], at, client=row.client, recipient=row.recipient, message_id=row.id,
                isa_id=isa.get("id") if isinstance(isa, dict) else None,
                purpose=row.header.get("purpose"), message_type=row.header.get("type"),
                reason=reason,
            )  # fmt: skip
        return new

    def _emit(self, event: StatusEventKind, at: datetime, **fields: Any) -> None:
        fields.setdefault("message_id", None)
        fields.setdefault("review_id", None)
        fields.setdefault("reason", None)
        self._events.append(
            StatusEvent(
                cursor=len(self._events) + 1, id=str(uuid.uuid4()), event=event, at=at, **fields
            )
        )

    async def mark_sent(self, message_id: str, now: datetime) -> Status:
        row = self._row(message_id)
        status = self._apply(row, Event.PUBLISHED, now, "confirmed by the broker")
        row.attempts += 1  # after the move: an illegal move changes nothing (as a rollback)
        return status

    async def mark_attempt_failed(
        self, message_id: str, now: datetime, backoff: timedelta, detail: str
    ) -> None:
        row = self._row(message_id)
        row.attempts += 1
        row.next_attempt_at = now + backoff
        entry = HistoryEntry(
            at=now, status=row.status, detail=f"attempt {row.attempts} failed: {detail}"
        )
        row.history.append(entry)

    async def mark_failed(self, message_id: str, now: datetime, detail: str) -> Status:
        return self._apply(self._row(message_id), Event.FAILED_LOCALLY, now, detail)

    async def record_receipt(
        self,
        *,
        envelope_id: str,
        frame: bytes,
        status: Literal["delivered", "rejected"],
        reason: str,
        at: datetime,
    ) -> ReceiptOutcome:
        row = self._outbox.get(envelope_id)
        if row is None:
            return "unknown"
        detail = f"receipt: {status}" + (f" ({reason})" if reason else "")
        before = row.status
        event = receipt_event(status, reason or None)
        if self._apply(row, event, at, detail, reason or None) is before:
            return "ignored"
        self._receipts[envelope_id] = ReceiptRecord(
            envelope_id=envelope_id, frame=frame, status=status, reason=reason, at=at
        )
        return "applied"

    async def sent_envelope(self, message_id: str) -> SentEnvelope:
        row = self._row(message_id)
        digest = hashlib.sha256(row.frame).hexdigest() if row.frame else None
        return SentEnvelope(id=row.id, recipient=row.recipient, frame_sha256=digest)

    async def expire_overdue(self, now: datetime) -> Sequence[str]:
        overdue = sorted(
            (r for r in self._outbox.values() if not is_settled(r.status) and r.expires_at <= now),
            key=lambda r: r.expires_at,
        )
        for row in overdue:
            self._apply(row, Event.EXPIRED, now, "not collected before expires_at")
        return [r.id for r in overdue]

    async def message_status(self, message_id: str) -> MessageStatus:
        r = self._row(message_id)
        return MessageStatus(
            id=r.id,
            recipient=r.recipient,
            status=r.status,
            attempts=r.attempts,
            header=dict(r.header),
            created_at=r.created_at,
            expires_at=r.expires_at,
            history=tuple(r.history),
            receipt=self._receipts.get(message_id),
        )

    async def outbox_depth(self) -> int:
        return sum(r.status is Status.QUEUED for r in self._outbox.values())

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
        if envelope_id in self._seen:
            return False
        self._seen[envelope_id] = now
        self._cursor += 1
        item = InboxItem(
            cursor=self._cursor,
            id=envelope_id,
            sender=sender,
            header=dict(header),
            received_at=now,
            acked_at=None,
            purged=False,
        )
        self._inbox[envelope_id] = _Incoming(item, bytes(payload))
        return True

    async def mark_seen(self, envelope_id: str, now: datetime) -> bool:
        if envelope_id in self._seen:
            return False
        self._seen[envelope_id] = now
        return True

    async def forget_seen_before(self, cutoff: datetime) -> int:
        old = [k for k, at in self._seen.items() if at < cutoff]
        for key in old:
            del self._seen[key]
        return len(old)

    async def inbox_page(
        self, after_cursor: int, limit: int, *, unacked_only: bool = False
    ) -> Sequence[InboxItem]:
        items = sorted((e.item for e in self._inbox.values()), key=lambda i: i.cursor)
        chosen = [i for i in items if i.cursor > after_cursor and not (unacked_only and i.acked_at)]
        return chosen[:limit]

    def _incoming(self, message_id: str) -> _Incoming:
        try:
            return self._inbox[message_id]
        except KeyError:
            raise NotFound(f"no inbox message {message_id!r}") from None

    async def read_inbox_payload(self, message_id: str) -> bytes:
        payload = self._incoming(message_id).payload
        if payload is None:
            raise PayloadPurged(f"the payload of {message_id!r} has been purged")
        return payload

    async def ack(self, message_id: str, now: datetime) -> bool:
        entry = self._incoming(message_id)
        if entry.item.acked_at is not None:
            return False
        entry.item = entry.item.model_copy(update={"acked_at": now})
        return True

    async def purge_inbox_payload(self, message_id: str, now: datetime) -> None:
        entry = self._incoming(message_id)
        entry.payload = None
        entry.item = entry.item.model_copy(update={"purged": True})

    async def erase_inbox_payload(self, message_id: str, now: datetime) -> bool:
        entry = self._incoming(message_id)
        if entry.item.held:
            raise LegalHold(f"inbox message {message_id!r} is under legal hold")
        if entry.item.purged:
            return False
        await self.purge_inbox_payload(message_id, now)
        return True

    async def set_legal_hold(self, message_id: str, held: bool, now: datetime) -> bool:
        entry = self._incoming(message_id)
        if entry.item.held == held:
            return False
        entry.item = entry.item.model_copy(update={"held": held})
        return True

    async def record_case_event(self, message_id: str, event: CaseEvent, now: datetime) -> None:
        entry = self._incoming(message_id)
        name = "case_closed_at" if event == "case_closed" else "last_activity_at"
        entry.item = entry.item.model_copy(update={name: now})

    async def purge_received_before(self, cutoff: datetime, now: datetime) -> Sequence[str]:
        ids = [
            e.item.id
            for e in sorted(self._inbox.values(), key=lambda e: e.item.cursor)
            if e.item.received_at < cutoff and not e.item.purged and not e.item.held
        ]
        for message_id in ids:
            await self.purge_inbox_payload(message_id, now)
        return ids

    # -- reviews ---------------------------------------------------------------------------

    def _emit_review(
        self, review: ReviewRecord, event: StatusEventKind, at: datetime, reason: str | None = None
    ) -> None:
        self._emit(
            event, at, client=review.client, recipient=review.recipient, review_id=review.id,
            message_id=review.message_id, isa_id=review.isa_id, purpose=review.purpose,
            message_type=review.message_type, reason=reason,
        )  # fmt: skip

    async def hold_for_review(
        self,
        review: ReviewRecord,
        *,
        idempotency_key: str | None,
        body_sha256: str,
        request: bytes,
    ) -> ReviewHeld:
        if idempotency_key is not None and (review.client, idempotency_key) in self._review_keys:
            first_id, first_sha = self._review_keys[(review.client, idempotency_key)]
            if first_sha != body_sha256:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used with another body"
                )
            return ReviewHeld(review=self._reviews[first_id], created=False)
        held = review.model_copy(update={"cursor": len(self._reviews) + 1,
                                         "state": ReviewState.PENDING})  # fmt: skip
        self._reviews[held.id] = held
        self._requests[held.id] = bytes(request)
        if idempotency_key is not None:
            self._review_keys[(held.client, idempotency_key)] = (held.id, body_sha256)
        self._emit_review(held, "review_pending", held.held_at)
        return ReviewHeld(review=held, created=True)

    async def review(self, review_id: str) -> ReviewRecord:
        try:
            return self._reviews[review_id]
        except KeyError:
            raise NotFound(f"no review {review_id!r}") from None

    async def review_request(self, review_id: str) -> bytes:
        await self.review(review_id)
        request = self._requests.get(review_id)
        if request is None:
            raise PayloadPurged(f"the request held for review {review_id!r} has been shredded")
        return request

    async def reviews_page(
        self, after_cursor: int, limit: int, *, pending_only: bool = True
    ) -> Sequence[ReviewRecord]:
        chosen = [
            r
            for r in sorted(self._reviews.values(), key=lambda r: r.cursor)
            if r.cursor > after_cursor and (not pending_only or r.state is ReviewState.PENDING)
        ]
        return chosen[:limit]

    def _settle(self, review: ReviewRecord, state: ReviewState, **changes: Any) -> ReviewRecord:
        self._requests.pop(review.id, None)
        settled = review.model_copy(update={"state": state, **changes})
        self._reviews[review.id] = settled
        return settled

    async def narrow_review(
        self, review_id: str, keep: tuple[str, ...], *, by: str, at: datetime
    ) -> ReviewRecord:
        review = await self.review(review_id)
        act(review.state, ReviewAction.NARROW)
        narrowed = review.model_copy(update={"narrowed": tuple(keep)})
        self._reviews[review_id] = narrowed
        self._emit_review(narrowed, "review_narrowed", at)
        return narrowed

    async def return_review(
        self, review_id: str, reason: str, *, by: str, at: datetime
    ) -> ReviewRecord:
        review = await self.review(review_id)
        state = act(review.state, ReviewAction.RETURN)
        returned = self._settle(review, state, decided_at=at, decided_by=by, note=reason)
        self._emit_review(returned, "review_returned", at, reason)
        return returned

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
        review = await self.review(review_id)
        state = act(review.state, ReviewAction.APPROVE)
        if message_id in self._outbox:
            raise IdempotencyConflict(f"message id {message_id!r} is already in the outbox")
        await self.enqueue_outgoing(
            message_id=message_id, client=review.client, idempotency_key=None, body_sha256="",
            recipient=review.recipient, header=header, frame=frame, now=at,
            expires_at=expires_at,
        )  # fmt: skip
        approved = self._settle(review, state, decided_at=at, decided_by=by,
                                message_id=message_id)  # fmt: skip
        self._emit_review(approved, "review_approved", at)
        return approved

    async def escalate_overdue_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        due = sorted(
            (r for r in self._reviews.values() if r.state is ReviewState.PENDING
             and r.escalated_at is None and r.due_at <= now),
            key=lambda r: (r.due_at, r.cursor),
        )  # fmt: skip
        out = []
        for review in due:
            escalated = review.model_copy(update={"escalated_at": now})
            self._reviews[review.id] = escalated
            self._emit_review(escalated, "review_overdue", now)
            out.append(escalated)
        return out

    async def expire_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        due = sorted(
            (r for r in self._reviews.values()
             if r.state is ReviewState.PENDING and r.expires_at <= now),
            key=lambda r: (r.expires_at, r.cursor),
        )  # fmt: skip
        out = []
        for review in due:
            expired = self._settle(review, act(review.state, ReviewAction.EXPIRE), decided_at=now)
            self._emit_review(expired, "review_expired", now, "held for review past its expiry")
            out.append(expired)
        return out

    # -- status events -----------------------------------------------------------------------

    async def events_page(self, after_cursor: int, limit: int) -> Sequence[StatusEvent]:
        return [e for e in self._events if e.cursor > after_cursor][:limit]

    async def unpushed_events(self, limit: int) -> Sequence[StatusEvent]:
        return [e for e in self._events if e.id not in self._pushed][:limit]

    async def mark_event_pushed(self, event_id: str, now: datetime) -> None:
        if not any(e.id == event_id for e in self._events):
            raise NotFound(f"no status event {event_id!r}")
        self._pushed.add(event_id)
