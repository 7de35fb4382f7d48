"""The review queue's edges: what the API shows of a review, its audit entries, its timer.

Rules:
1. A view carries field paths, reasons, ids, times and who acted: never a payload value.
   ``overdue`` is judged with the caller's ``now`` (``federation.review.is_overdue``).
2. Every act on a review is one ``review`` audit entry about the review (its id is the entry's
   message id, so it inherits the referral's subject keys from the ``decision`` entry written
   when it was held): the actor is the API client, the person acting (id, role, justification)
   fills the entry's ``actor_id`` / ``actor_role`` / ``justification`` (``agent.audit.log``),
   the outcome is what happened, the detail what the act concerned (the reason it was
   returned); the agent's own moves (overdue, expired) name the system.
3. :func:`watch_reviews`, on every housekeeping tick: a pending review past its ISA's time limit
   escalates once (a ``review_overdue`` event, ``isa_agent_reviews_overdue_total``, an audit
   entry and a warning naming the review id and the role, no personal data); one held past
   ``[limits] review_hold_hours`` expires, never sent (``review_expired``, counted, audited).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from agent.actor import Actor
from agent.api_models import (
    IsaRef,
    ReviewView,
    StatusEventPage,
    StatusEventView,
    SubmitResponse,
    WithheldField,
)
from agent.audit import AuditEvent, AuditSink, message_event, record_after_commit
from agent.metrics import Metrics
from agent.store import ReviewRecord, StatusEvent, Store
from federation.canonical import format_time
from federation.review import ReviewState, is_overdue

__all__ = [
    "event_page",
    "review_event",
    "review_view",
    "shared_now",
    "submit_answer",
    "watch_reviews",
    "webhook_event",
]

log = logging.getLogger(__name__)


def _time(at: datetime | None) -> str | None:
    return None if at is None else format_time(at)


def shared_now(review: ReviewRecord) -> tuple[str, ...]:
    """What would leave if it were approved now, as held: the narrowing, or the decision's."""
    return review.narrowed if review.narrowed is not None else review.shared_fields


def _withheld(review: ReviewRecord) -> list[WithheldField]:
    kept = set(shared_now(review))
    cut = [
        WithheldField(path=p, reason="A reviewer withheld it when narrowing the referral.")
        for p in review.shared_fields
        if p not in kept
    ]
    held = [WithheldField(path=p, reason=r) for p, r in review.withheld_fields]
    return sorted([*held, *cut], key=lambda w: w.path)


def review_view(review: ReviewRecord, now: datetime) -> ReviewView:
    """Rule 1."""
    pending = review.state is ReviewState.PENDING
    return ReviewView.model_validate(
        {
            "id": review.id, "cursor": review.cursor, "status": review.state.value,
            "overdue": pending and is_overdue(review.due_at, now), "to": review.recipient,
            "isa": IsaRef(id=review.isa_id, version=review.isa_version),
            "purpose": review.purpose, "type": review.message_type, "risk": review.risk,
            "submitted_by": review.submitter, "reviewer_role": review.role,
            "held_at": format_time(review.held_at), "due_at": format_time(review.due_at),
            "expires_at": format_time(review.expires_at),
            "escalated_at": _time(review.escalated_at),
            "shared_fields": list(shared_now(review)), "withheld_fields": _withheld(review),
            "narrowed": review.narrowed is not None, "reasons": list(review.reasons),
            "decided_at": _time(review.decided_at), "decided_by": review.decided_by,
            "return_reason": review.note or None, "message_id": review.message_id,
        }
    )  # fmt: skip


_SUBMIT_STATUS = {
    ReviewState.PENDING: "review_pending",
    ReviewState.RETURNED: "review_returned",
    ReviewState.EXPIRED: "review_expired",
}


def submit_answer(review: ReviewRecord, message_status: str | None = None) -> SubmitResponse:
    """The 202 of a submit held for review (or of its idempotent repeat: once approved, the
    message's id and ``message_status``)."""
    approved = review.state is ReviewState.APPROVED and review.message_id is not None
    return SubmitResponse.model_validate(
        {
            "id": review.message_id if approved else review.id,
            "status": message_status if approved else _SUBMIT_STATUS[review.state],
            "shared_fields": list(shared_now(review)),
            "withheld_fields": _withheld(review),
            "review_id": review.id,
        }
    )


def review_event(
    review: ReviewRecord,
    actor: str,
    outcome: str,
    *,
    person: Actor | None = None,
    detail: str = "",
    fields: Sequence[str] = (),
) -> AuditEvent:
    """Rule 2: one ``review`` entry about ``review``, by ``actor`` (the client) for ``person``."""
    return message_event(
        "review", actor, review.id, review.recipient, outcome=outcome, detail=detail,
        fields_shared=tuple(fields), person=person,
    )  # fmt: skip


def _event_view(event: StatusEvent) -> StatusEventView:
    return StatusEventView(
        cursor=event.cursor, id=event.id, event=event.event, at=format_time(event.at),
        client=event.client, message_id=event.message_id, review_id=event.review_id,
        to=event.recipient, isa=event.isa_id, purpose=event.purpose, type=event.message_type,
        reason=event.reason,
    )  # fmt: skip


def event_page(events: Sequence[StatusEvent], after: int) -> StatusEventPage:
    items = [_event_view(e) for e in events]
    return StatusEventPage(items=items, next_cursor=items[-1].cursor if items else after)


def webhook_event(event: StatusEvent) -> StatusEventView:
    """An event as the webhook pushes it (``agent.webhook``)."""
    return _event_view(event)


async def watch_reviews(store: Store, audit: AuditSink, metrics: Metrics, now: datetime) -> None:
    """Rule 3: escalate the overdue reviews, expire those held too long."""
    escalated = await store.escalate_overdue_reviews(now)
    expired = await store.expire_reviews(now)
    events = [
        review_event(r, "agent", "overdue", detail=f"due {format_time(r.due_at)}; escalated")
        for r in escalated
    ]
    events += [review_event(r, "agent", "expired", detail="held too long; never sent")
               for r in expired]  # fmt: skip
    for review in escalated:
        log.warning("review %s is overdue (role %s): escalated", review.id, review.role)
    metrics.inc("isa_agent_reviews_overdue_total", len(escalated))
    metrics.inc("isa_agent_reviews_expired_total", len(expired))
    if events:
        await record_after_commit(audit, now, *events, log=log, done="review timer moved")
