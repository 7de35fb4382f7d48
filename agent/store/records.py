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

__all__ = [
    "EnqueueResult",
    "HistoryEntry",
    "InboxItem",
    "MessageStatus",
    "OutgoingMessage",
    "PayloadPurged",
    "ReceiptOutcome",
    "ReceiptRecord",
    "SentEnvelope",
    "Store",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)

#: What ``record_receipt`` did: moved the status, changed nothing (settled already, a duplicate,
#: a copy rejected for how it arrived), or found no outgoing message with that envelope id.
ReceiptOutcome = Literal["applied", "ignored", "unknown"]


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

    async def purge_received_before(self, cutoff: datetime, now: datetime) -> Sequence[str]: ...

    async def message_status(self, message_id: str) -> MessageStatus: ...

    async def outbox_depth(self) -> int: ...
