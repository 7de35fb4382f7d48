"""The sender's view of one outgoing message: a small state machine in one literal table.

This module performs no I/O and reads no clock. The store (``agent/store/sqlite.py``) keeps
the status of each outgoing message and asks :func:`transition` for every move; nothing else
changes it. Only receipts that passed ``federation.receipts.accept_receipt`` (signed by the
envelope's true recipient, citing the hash of the frame we sent) become events here.

Statuses::

    queued ──published──▶ sent ──receipt_delivered──▶ delivered   (final)
      │                    ├───receipt_rejected───▶ rejected ──receipt_delivered──▶ delivered
      │                    ├───expired────────────▶ expired     (final)
      │                    └───copy_rejected──────▶ sent        (status unchanged)
      ├──receipt_delivered / receipt_rejected / expired / copy_rejected  (as from sent)
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
5. **delivered is final.** The true recipient signed that it holds the frame; nothing moves the
   message again (a later rejection can only be about another copy of the same frame).
6. **A delivered receipt overrides rejected.** A rejection settles the message, but if the true
   recipient later delivers the same frame (a republished or redelivered copy got through), its
   case system holds the referral, so the status becomes ``delivered`` and that receipt replaces
   the rejection. ``rejected`` is the only status a receipt moves out of.
7. **A copy rejected for how it arrived changes nothing** (``copy_rejected``: the reasons in
   ``federation.receipts.ARRIVAL_REASONS``, e.g. ``transport_identity``, ``replay``). Anyone who
   can read a queue can republish a frame; the recipient refusing *that copy* says nothing about
   the genuine one, which is (or will be) delivered. The caller notes it in the history only.
8. **expired is final**: decided by the caller comparing ``expires_at`` with its ``now``; late
   receipts after it are ignored.
9. Every other event in a settled status (a duplicate receipt, a late confirm after a fast
   receipt, a second rejection) leaves it unchanged and is *not* an error: these are normal in
   an at-least-once network. Every legal pair is in the table, unchanged ones included; a pair
   missing from it is illegal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from federation.errors import LocalError

__all__ = [
    "SETTLED",
    "TRANSITIONS",
    "Event",
    "IllegalTransition",
    "Status",
    "is_settled",
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
    RECEIPT_DELIVERED = "receipt_delivered"  # the true recipient's "delivered" receipt
    RECEIPT_REJECTED = "receipt_rejected"  # its "rejected" receipt, a reason about the frame
    COPY_REJECTED = "copy_rejected"  # its "rejected" receipt, a reason about one copy (rule 7)
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


#: Nothing more to publish and no expiry to watch: the relay and the housekeeper skip these.
SETTLED: Final = frozenset({Status.DELIVERED, Status.REJECTED, Status.EXPIRED})

_Q, _S, _D, _R, _X = Status.QUEUED, Status.SENT, Status.DELIVERED, Status.REJECTED, Status.EXPIRED
_PUB, _OK, _NO = Event.PUBLISHED, Event.RECEIPT_DELIVERED, Event.RECEIPT_REJECTED
_COPY, _EXP, _FAIL = Event.COPY_REJECTED, Event.EXPIRED, Event.FAILED_LOCALLY

#: (status, event) -> next status; the rule that allows each pair is on its right.
TRANSITIONS: Final[dict[tuple[Status, Event], Status]] = {
    (_Q, _PUB): _S,   (_Q, _OK): _D,   (_Q, _NO): _R,   (_Q, _COPY): _Q,  # rules 1, 2, 7
    (_Q, _EXP): _X,   (_Q, _FAIL): _R,                                    # rules 8, 3
    (_S, _OK): _D,    (_S, _NO): _R,   (_S, _COPY): _S, (_S, _EXP): _X,   # rules 2, 7, 8
    (_D, _PUB): _D,   (_D, _OK): _D,   (_D, _NO): _D,   (_D, _COPY): _D,  # rule 5
    (_D, _EXP): _D,   (_D, _FAIL): _D,                                    # rule 5
    (_R, _PUB): _R,   (_R, _OK): _D,   (_R, _NO): _R,   (_R, _COPY): _R,  # rules 9, 6
    (_R, _EXP): _R,   (_R, _FAIL): _R,                                    # rule 9
    (_X, _PUB): _X,   (_X, _OK): _X,   (_X, _NO): _X,   (_X, _COPY): _X,  # rule 8
    (_X, _EXP): _X,   (_X, _FAIL): _X,                                    # rule 8
}  # fmt: skip


def is_settled(status: Status) -> bool:
    """True for delivered, rejected and expired: not published again, never expired."""
    return status in SETTLED


def transition(current: Status, event: Event) -> Status:
    """The status after ``event`` (possibly unchanged); raises if the table lacks the pair."""
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise IllegalTransition(current, event) from None
