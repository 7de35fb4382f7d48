"""What the agent's store hands back: frozen, strict value objects, and the store's contract.

This module performs no I/O. Every time is an aware UTC ``datetime``. Headers are the envelope's
header JSON (no personal data); payloads only ever leave the store through
``read_inbox_payload``, decrypted on the way out.

:class:`Store` is the contract both the SQLite store and any fake satisfy; the shared contract
suite in ``tests/unit/agent/test_store_contract.py`` runs against each implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from agent.errors import PayloadPurged
from federation.outbox import Status
from federation.review import ReviewState

__all__ = [
    "CaseEvent",
    "EnqueueResult",
    "HistoryEntry",
    "InboxItem",
    "MessageStatus",
    "OutgoingMessage",
    "PayloadPurged",
    "ReceiptOutcome",
    "ReceiptRecord",
    "ReviewHeld",
    "ReviewRecord",
    "SentEnvelope",
    "StatusEvent",
    "StatusEventKind",
    "Store",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)

#: What ``record_receipt`` did: moved the status, changed nothing (settled already, a duplicate,
#: a copy rejected for how it arrived), or found no outgoing message with that envelope id.
ReceiptOutcome = Literal["applied", "ignored", "unknown"]
#: What a case system reports about the case a delivery belongs to (retention may count from it).
CaseEvent = Literal["case_closed", "activity"]


class EnqueueResult(BaseModel):
    """``created`` is False when an identical request with the same idempotency key came before."""

    model_config = _FROZEN
    id: str
    status: Status
    created: bool


class OutgoingMessage(BaseModel):
    """An outbox row the relay should publish (envelope frame bytes, where to, its header)."""

    model_config = _FROZEN
    id: str
    recipient: str
    frame: bytes
    attempts: int
    expires_at: datetime
    header: dict[str, Any]  # the envelope header as stored at submit (no personal data)


class SentEnvelope(BaseModel):
    """What a receipt for an outgoing message is checked against: where it went, and the hex
    SHA-256 of the frame sent (None once retention deleted the frame of a delivered message)."""

    model_config = _FROZEN
    id: str
    recipient: str
    frame_sha256: str | None


class HistoryEntry(BaseModel):
    model_config = _FROZEN
    at: datetime
    status: Status
    detail: str


class ReceiptRecord(BaseModel):
    """The receipt that settled a message: its exact signed frame and what it said."""

    model_config = _FROZEN
    envelope_id: str
    frame: bytes
    status: Literal["delivered", "rejected"]
    reason: str
    at: datetime


class MessageStatus(BaseModel):
    model_config = _FROZEN
    id: str
    recipient: str
    status: Status
    attempts: int
    header: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    history: tuple[HistoryEntry, ...]
    receipt: ReceiptRecord | None


class InboxItem(BaseModel):
    """One delivery, without its payload. ``cursor`` only ever increases."""

    model_config = _FROZEN
    cursor: int
    id: str
    sender: str
    header: dict[str, Any]
    received_at: datetime
    acked_at: datetime | None
    purged: bool
    #: under legal hold: no retention pass or erasure shreds it (issue 18.5)
    held: bool = False
    #: the latest case closure and activity the case system reported (retention's ``from``)
    case_closed_at: datetime | None = None
    last_activity_at: datetime | None = None


class ReviewRecord(BaseModel):
    """A referral held for review (``federation.review``): what would leave and why, who
    submitted it and who may review it, never its payload. ``cursor`` (the store's order of
    holding, from 1) and the settling fields are the store's to fill."""

    model_config = _FROZEN
    id: str
    cursor: int = 0
    client: str
    submitter: str
    role: str
    recipient: str
    isa_id: str
    isa_version: str
    purpose: str
    message_type: str
    risk: str
    shared_fields: tuple[str, ...]
    withheld_fields: tuple[tuple[str, str], ...]  # (path, reason in plain words)
    reasons: tuple[str, ...]
    narrowed: tuple[str, ...] | None = None  # the fields left after a narrowing
    state: ReviewState = ReviewState.PENDING
    held_at: datetime
    due_at: datetime
    expires_at: datetime
    escalated_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str = ""  # why it was returned
    message_id: str | None = None  # the message an approval sent


class ReviewHeld(BaseModel):
    """``created`` is False when an identical request with the same idempotency key came before."""

    model_config = _FROZEN
    review: ReviewRecord
    created: bool


#: The status events the case system is told about (``GET /v1/events``, the webhook).
StatusEventKind = Literal[
    "delivered",
    "rejected",
    "expired",
    "review_pending",
    "review_narrowed",
    "review_approved",
    "review_returned",
    "review_overdue",
    "review_expired",
]


class StatusEvent(BaseModel):
    """One status event, in the order the store committed it (``cursor``); no payload values:
    ids, agencies, the ISA, purpose and type, and a reason (a rejection's code, an expiry, a
    reviewer's reason for returning)."""

    model_config = _FROZEN
    cursor: int
    id: str
    event: StatusEventKind
    at: datetime
    client: str
    message_id: str | None
    review_id: str | None
    recipient: str
    isa_id: str | None
    purpose: str | None
    message_type: str | None
    reason: str | None


class Store(Protocol):
    """The agent's durable store. Every write returns only after its COMMIT.

    Failures to store durably raise ``agent.errors.StoreUnavailable``; unknown ids raise
    ``agent.errors.NotFound``; an idempotency key reused with another body raises
    ``agent.errors.IdempotencyConflict``.
    """

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
    ) -> EnqueueResult: ...

    async def due_outgoing(self, now: datetime, limit: int) -> Sequence[OutgoingMessage]: ...

    async def mark_sent(self, message_id: str, now: datetime) -> Status: ...

    async def mark_attempt_failed(
        self, message_id: str, now: datetime, backoff: timedelta, detail: str
    ) -> None: ...

    async def mark_failed(self, message_id: str, now: datetime, detail: str) -> Status: ...

    async def record_receipt(
        self,
        *,
        envelope_id: str,
        frame: bytes,
        status: Literal["delivered", "rejected"],
        reason: str,
        at: datetime,
    ) -> ReceiptOutcome: ...

    async def sent_envelope(self, message_id: str) -> SentEnvelope: ...

    async def expire_overdue(self, now: datetime) -> Sequence[str]: ...

    async def accept_incoming(
        self,
        *,
        envelope_id: str,
        sender: str,
        header: Mapping[str, Any],
        payload: bytes,
        now: datetime,
    ) -> bool: ...

    async def mark_seen(self, envelope_id: str, now: datetime) -> bool: ...

    async def forget_seen_before(self, cutoff: datetime) -> int: ...

    async def inbox_page(
        self, after_cursor: int, limit: int, *, unacked_only: bool = False
    ) -> Sequence[InboxItem]: ...

    async def read_inbox_payload(self, message_id: str) -> bytes: ...

    async def ack(self, message_id: str, now: datetime) -> bool:
        """Mark the delivery acknowledged; True only for the call that did so (the first)."""
        ...

    async def purge_inbox_payload(self, message_id: str, now: datetime) -> None: ...

    async def erase_inbox_payload(self, message_id: str, now: datetime) -> bool:
        """Crypto-shred the payload unless it is under legal hold (``LegalHold``, nothing
        changed); True when shredded now, False when it was already."""
        ...

    async def set_legal_hold(self, message_id: str, held: bool, now: datetime) -> bool:
        """Place (``held``) or release a legal hold; True when that changed anything."""
        ...

    async def record_case_event(self, message_id: str, event: CaseEvent, now: datetime) -> None:
        """The case system reports ``event`` on the delivery's case now (the latest is kept)."""
        ...

    async def purge_received_before(self, cutoff: datetime, now: datetime) -> Sequence[str]: ...

    async def message_status(self, message_id: str) -> MessageStatus: ...

    async def outbox_depth(self) -> int: ...

    # -- reviews (federation.review) and status events ------------------------------------

    async def hold_for_review(
        self,
        review: ReviewRecord,
        *,
        idempotency_key: str | None,
        body_sha256: str,
        request: bytes,
    ) -> ReviewHeld:
        """Hold ``review`` pending with its ``request`` (stored encrypted) and a
        ``review_pending`` event, in one commit; a repeat of the same key and body returns the
        first review (``created`` False), another body with it is ``IdempotencyConflict``."""
        ...

    async def review(self, review_id: str) -> ReviewRecord: ...

    async def review_request(self, review_id: str) -> bytes:
        """The held request; ``PayloadPurged`` once the review is settled (it is shredded)."""
        ...

    async def reviews_page(
        self, after_cursor: int, limit: int, *, pending_only: bool = True
    ) -> Sequence[ReviewRecord]: ...

    async def narrow_review(
        self, review_id: str, keep: tuple[str, ...], *, by: str, at: datetime
    ) -> ReviewRecord:
        """Pending stays pending with ``narrowed`` = ``keep`` (checked by the caller against
        ``federation.review.narrow``), and a ``review_narrowed`` event."""
        ...

    async def return_review(
        self, review_id: str, reason: str, *, by: str, at: datetime
    ) -> ReviewRecord:
        """Pending -> returned, its request shredded, a ``review_returned`` event."""
        ...

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
        """Pending -> approved with the sealed message queued in the outbox (as a submit
        queues it), its request shredded and a ``review_approved`` event, in one commit."""
        ...

    async def escalate_overdue_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        """Pending reviews past ``due_at`` not yet escalated: mark them, one ``review_overdue``
        event each; returns them."""
        ...

    async def expire_reviews(self, now: datetime) -> Sequence[ReviewRecord]:
        """Pending reviews past ``expires_at`` become expired (never sent), shredded, one
        ``review_expired`` event each; returns them."""
        ...

    async def events_page(self, after_cursor: int, limit: int) -> Sequence[StatusEvent]: ...

    async def unpushed_events(self, limit: int) -> Sequence[StatusEvent]:
        """Events the webhook has not taken yet, oldest first."""
        ...

    async def mark_event_pushed(self, event_id: str, now: datetime) -> None: ...
