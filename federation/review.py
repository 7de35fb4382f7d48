"""Referrals held for review: who may act on one, what a narrowing may do, when it is overdue.

This module performs no I/O and reads no clock (``now`` is an argument).

A REVIEW decision (``federation.isa``, evaluation step 5 or 6) holds the referral in the
sender's agent, unsent, until a person acts on it. Its states::

    pending ──approve──▶ approved   (final: decided again, sealed into the outbox, sent)
       ├─────narrow───▶ pending    (fewer fields will leave; still to be approved)
       ├─────return───▶ returned   (final: never sent)
       └─────expire───▶ expired    (final: held too long, never sent)

Rules:
1. Only a person acts on a review, as the case system asserts them: an id and a role. The role
   must be the ISA's review role for the decision (``Flow.review_rule``) and the person must not
   be the one who submitted the referral (:func:`check_reviewer`): otherwise
   :class:`NotAReviewer` or :class:`OwnSubmission` (403). Four eyes, always.
2. Only a pending review can be acted on; anything else is :class:`ReviewSettled` (409).
   :data:`TRANSITIONS` is the whole state machine: a pair missing from it is settled.
3. A narrowing only ever withholds more (:func:`narrow`): the fields that leave after it are a
   non-empty subset of those that would leave before it. Naming a field the decision withheld
   (or one the referral does not hold) is :class:`NarrowingWidens`; naming none, or leaving out
   a field the message type requires on the wire (:func:`wire_required`: ``synthetic``; the
   recipient would reject the payload), is :class:`NarrowingInvalid` (return the referral
   instead). Both are 422 and change nothing.
4. What leaves on approval is decided again at that moment (:func:`approval_decision`): the
   ISA's fresh decision, cut down to the narrowing. A review therefore never sends more than the
   fresh decision shares, which is what PERMIT would send at that moment; a fresh DENY sends
   nothing.
5. A pending review is overdue from ``due_at`` (held at + the rule's ``within``) on
   (:func:`is_overdue`); it escalates once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Final

from federation.errors import LocalError
from federation.isa import Decision, ReviewRule, WithheldField
from federation.periods import add_period
from federation.referrals import MESSAGE_TYPES

__all__ = [
    "NARROWED",
    "TRANSITIONS",
    "NarrowingInvalid",
    "NarrowingWidens",
    "NotAReviewer",
    "OwnSubmission",
    "ReviewAction",
    "ReviewRefused",
    "ReviewSettled",
    "ReviewState",
    "act",
    "approval_decision",
    "check_reviewer",
    "due_at",
    "is_overdue",
    "narrow",
    "wire_required",
]

#: The reason code of a field a reviewer withheld (rule 3).
NARROWED: Final = "withheld_by_reviewer"
_NARROWED_TEXT: Final = "A reviewer withheld it when narrowing the referral."


class ReviewState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    RETURNED = "returned"
    EXPIRED = "expired"


class ReviewAction(StrEnum):
    APPROVE = "approve"
    NARROW = "narrow"
    RETURN = "return"
    EXPIRE = "expire"


_P = ReviewState.PENDING

#: (state, action) -> next state (rule 2); only a pending review moves.
TRANSITIONS: Final[dict[tuple[ReviewState, ReviewAction], ReviewState]] = {
    (_P, ReviewAction.APPROVE): ReviewState.APPROVED,
    (_P, ReviewAction.NARROW): _P,
    (_P, ReviewAction.RETURN): ReviewState.RETURNED,
    (_P, ReviewAction.EXPIRE): ReviewState.EXPIRED,
}


class ReviewRefused(LocalError):
    """A review action that is not allowed; it changed nothing."""

    http_status = 403
    title = "Review action refused"


class NotAReviewer(ReviewRefused):
    """No person was named, or the person does not hold the ISA's review role (rule 1)."""

    title = "Not a reviewer of this referral"


class OwnSubmission(ReviewRefused):
    """The person acting is the one who submitted the referral (rule 1)."""

    title = "A referral cannot be reviewed by the person who submitted it"


class ReviewSettled(ReviewRefused):
    """The review was already approved, returned or expired (rule 2)."""

    http_status = 409
    title = "The review is no longer pending"

    def __init__(self, state: ReviewState, action: ReviewAction) -> None:
        super().__init__(f"the review is {state.value}; it cannot be {_DONE[action]} now")
        self.state = state
        self.action = action


_DONE: Final = {
    ReviewAction.APPROVE: "approved",
    ReviewAction.NARROW: "narrowed",
    ReviewAction.RETURN: "returned",
    ReviewAction.EXPIRE: "expired",
}


class NarrowingInvalid(ReviewRefused):
    """A narrowing that cannot be applied (rule 3); ``errors`` names the fields at fault."""

    http_status = 422
    title = "Invalid narrowing"

    def __init__(self, message: str, errors: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = dict(errors or {})


class NarrowingWidens(NarrowingInvalid):
    """The narrowing names a field that would not leave: a narrowing never shares more."""

    title = "A narrowing cannot share a field the decision withheld"


def act(state: ReviewState, action: ReviewAction) -> ReviewState:
    """Rule 2: the state after ``action``; :class:`ReviewSettled` if the review is settled."""
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise ReviewSettled(state, action) from None


def check_reviewer(person: str | None, role: str | None, *, submitter: str, required: str) -> None:
    """Rule 1: ``person`` asserting ``role`` may act on a review ``submitter`` submitted, whose
    ISA rule (``ReviewRule.role``, fixed when it was held) ``required``."""
    if not person:
        raise NotAReviewer("a review action must name the person acting (X-Actor-Id)")
    if role != required:
        raise NotAReviewer(f"only a person with the role {required!r} may review this referral")
    if person == submitter:
        raise OwnSubmission("the person who submitted this referral cannot review it")


def wire_required(message_type: str) -> tuple[str, ...]:
    """The fields every payload of ``message_type`` must hold, minimised or not (rule 3)."""
    model = MESSAGE_TYPES.get(message_type)
    if model is None:
        return ()
    return tuple(sorted(name for name, f in model.model_fields.items() if f.is_required()))


def narrow(
    shared: Collection[str], keep: Collection[str], *, required: Collection[str] = ()
) -> tuple[str, ...]:
    """Rule 3: the fields that leave after a narrowing to ``keep`` of the ``shared`` ones."""
    wider = sorted(set(keep) - set(shared))
    if wider:
        errors = dict.fromkeys(wider[:50], "not shared by this review: a narrowing withholds more")
        raise NarrowingWidens(f"{len(wider)} field(s) named would not be shared", errors)
    if not keep:
        raise NarrowingInvalid("a narrowing must leave at least one field (or return it instead)")
    dropped = sorted(set(required) & set(shared) - set(keep))
    if dropped:
        errors = dict.fromkeys(dropped, "the message type requires it: it cannot be withheld")
        raise NarrowingInvalid(f"{len(dropped)} required field(s) left out", errors)
    return tuple(sorted(set(keep)))


def approval_decision(fresh: Decision, keep: Collection[str] | None) -> Decision:
    """Rule 4: ``fresh`` (the ISA's decision at approval) cut down to ``keep`` (None: no
    narrowing). A DENY, or a narrowing that leaves nothing the fresh decision shares, becomes a
    decision that shares nothing."""
    if fresh.outcome == "DENY":
        return fresh
    if keep is None:
        return fresh
    kept = set(keep)
    shared = tuple(p for p in fresh.shared_fields if p in kept)
    cut = tuple(
        WithheldField(path=p, reason_code=NARROWED, reason=_NARROWED_TEXT)
        for p in fresh.shared_fields
        if p not in kept
    )
    withheld = tuple(sorted((*fresh.withheld_fields, *cut), key=lambda w: w.path))
    transforms = {p: t for p, t in fresh.transforms.items() if p in kept}
    return fresh.model_copy(
        update={"shared_fields": shared, "withheld_fields": withheld, "transforms": transforms}
    )


def due_at(held_at: datetime, rule: ReviewRule) -> datetime:
    """Rule 5: when a review held at ``held_at`` becomes overdue."""
    return add_period(held_at, rule.within)


def is_overdue(due: datetime, now: datetime) -> bool:
    """Rule 5: a pending review is overdue from its ``due`` time on."""
    return now >= due
