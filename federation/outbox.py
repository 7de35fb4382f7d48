"""The sender's view of one outgoing message: a small state machine in one literal table.

This module performs no I/O and reads no clock. The store (``agent/store/sqlite.py``) keeps the
status of each outgoing message and asks :func:`transition` for every move; nothing else changes it.

Statuses::

    queued ──published──▶ sent ──receipt_delivered──▶ delivered
      │                    ├───receipt_rejected───▶ rejected
      │                    └───expired────────────▶ expired
      ├──receipt_delivered / receipt_rejected / expired  (as from sent)
      └──failed_locally──▶ rejected

Rules:

1. ``queued`` means "durably in the outbox, not yet confirmed by a broker"; ``sent`` means "a
   broker confirmed it (publisher confirm)". Failed publish attempts do not change the status:
   the message stays ``queued`` with a later ``next_attempt_at`` (the store counts attempts).
2. A receipt may arrive while the message is still ``queued``: the relay can crash (or lose the
   race) between the broker's confirm and committing ``sent``. A receipt is signed proof from the
   recipient, so it counts from ``queued`` as well as from ``sent``.
3. ``failed_locally`` (the broker refused the message as unroutable, or it could never be sent)
   is only possible before the broker has taken it, i.e. from ``queued``; it ends as
   ``rejected``. From ``sent`` it is an :class:`IllegalTransition` (a bug in the caller).
4. ``published`` from ``sent`` is an :class:`IllegalTransition`: the relay only publishes
   ``queued`` messages, so a second confirm for a ``sent`` message means the caller lost track.
5. **Terminal statuses (delivered, rejected, expired) are final.** Any event in a terminal
   status leaves it unchanged and is *not* an error: a duplicate receipt, a late receipt after
   expiry, a late confirm after a fast receipt are all normal in an at-least-once network. The
   caller records such an event in the message history as ignored (``is_terminal`` tells it).
6. ``expired`` is decided by the caller comparing ``expires_at`` with its ``now``; the machine
   only records the move.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from federation.errors import LocalError

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "Event",
    "IllegalTransition",
    "Status",
    "is_terminal",
    "transition",
]


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Event(StrEnum):
    PUBLISHED = "published"  # a broker confirmed the publish
    RECEIPT_DELIVERED = "receipt_delivered"  # a verified "delivered" receipt arrived
    RECEIPT_REJECTED = "receipt_rejected"  # a verified "rejected" receipt arrived
    EXPIRED = "expired"  # expires_at passed without a receipt
    FAILED_LOCALLY = "failed_locally"  # the broker refused it (unroutable), or it cannot be sent


class IllegalTransition(LocalError):
    """A caller asked for a move the table does not allow (a bug, never a peer's doing)."""

    http_status = 409
    title = "Illegal message status transition"

    def __init__(self, current: Status, event: Event) -> None:
        super().__init__(f"event {event.value!r} is not allowed in status {current.value!r}")
        self.current = current
        self.event = event


TERMINAL: Final = frozenset({Status.DELIVERED, Status.REJECTED, Status.EXPIRED})

#: (status, event) -> next status. A pair missing here is illegal, except in TERMINAL statuses,
#: where every event is ignored (rule 5).
TRANSITIONS: Final[dict[tuple[Status, Event], Status]] = {
    (Status.QUEUED, Event.PUBLISHED): Status.SENT,
    (Status.QUEUED, Event.RECEIPT_DELIVERED): Status.DELIVERED,
    (Status.QUEUED, Event.RECEIPT_REJECTED): Status.REJECTED,
    (Status.QUEUED, Event.EXPIRED): Status.EXPIRED,
    (Status.QUEUED, Event.FAILED_LOCALLY): Status.REJECTED,
    (Status.SENT, Event.RECEIPT_DELIVERED): Status.DELIVERED,
    (Status.SENT, Event.RECEIPT_REJECTED): Status.REJECTED,
    (Status.SENT, Event.EXPIRED): Status.EXPIRED,
}


def is_terminal(status: Status) -> bool:
    """True for delivered, rejected and expired: no event moves the message again."""
    return status in TERMINAL


def transition(current: Status, event: Event) -> Status:
    """The status after ``event``; unchanged in a terminal status; raises if illegal."""
    if current in TERMINAL:
        return current
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(current, event) from None
