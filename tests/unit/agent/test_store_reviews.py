"""The Store contract for reviews and status events: SQLite and the in-memory fake alike."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from agent.errors import IdempotencyConflict, NotFound
from agent.store import PayloadPurged, ReviewRecord, Store
from federation.outbox import Status
from federation.review import ReviewSettled, ReviewState
from tests.unit.agent.conftest import NOW, enqueue, header

REQUEST = b'{"synthetic":true,"payload":{"ref":"SYN-0001"}}'
SHARED = ("referral_ref", "victim.name", "victim.phone")


def review(review_id: str = "r-1", *, held: datetime = NOW, client: str = "case-system"
           ) -> ReviewRecord:  # fmt: skip
    return ReviewRecord(
        id=review_id, client=client, submitter="SYN-worker-1", role="marac_reviewer",
        recipient="syn-council", isa_id="isa-marac-referrals", isa_version="1.0.0",
        purpose="marac_risk_management", message_type="marac_referral", risk="medium",
        shared_fields=SHARED, withheld_fields=(("victim.refuge_address", "Never shared."),),
        reasons=("At medium risk a person must review this before it goes.",), held_at=held,
        due_at=held + timedelta(days=2), expires_at=held + timedelta(days=14),
    )  # fmt: skip


async def hold(store: Store, review_id: str = "r-1", *, key: str | None = None,
               body: str = "b-1", held: datetime = NOW) -> ReviewRecord:  # fmt: skip
    held_review = await store.hold_for_review(
        review(review_id, held=held), idempotency_key=key, body_sha256=body, request=REQUEST
    )
    return held_review.review


async def approve(store: Store, review_id: str = "r-1", message_id: str = "m-1") -> ReviewRecord:
    return await store.approve_review(
        review_id, by="case-system/SYN-reviewer-2", at=NOW, message_id=message_id,
        header=header(message_id), frame=b"IRL1" + message_id.encode(),
        expires_at=NOW + timedelta(hours=1),
    )  # fmt: skip


async def events(store: Store) -> list[tuple[str, str | None, str | None]]:
    return [(e.event, e.review_id, e.message_id) for e in await store.events_page(0, 100)]


class TestHold:
    async def test_a_held_review_is_pending_with_its_request(self, store: Store) -> None:
        """Held: pending, in the list, its request readable, one review_pending event."""
        held = await hold(store)
        assert (held.state, held.cursor, held.shared_fields) == (ReviewState.PENDING, 1, SHARED)
        assert await store.review_request("r-1") == REQUEST
        assert [r.id for r in await store.reviews_page(0, 10)] == ["r-1"]
        assert await events(store) == [("review_pending", "r-1", None)]

    async def test_nothing_is_queued_to_send(self, store: Store) -> None:
        """Holding a review puts nothing in the outbox."""
        await hold(store)
        assert await store.outbox_depth() == 0
        assert await store.due_outgoing(NOW + timedelta(days=1), 10) == []

    async def test_the_same_key_and_body_returns_the_first_review(self, store: Store) -> None:
        """A retried submit gets the review it made the first time; one event only."""
        await hold(store, "r-1", key="k")
        again = await store.hold_for_review(
            review("r-2"), idempotency_key="k", body_sha256="b-1", request=REQUEST
        )
        assert (again.review.id, again.created) == ("r-1", False)
        assert len(await events(store)) == 1

    async def test_the_same_key_with_another_body_is_a_conflict(self, store: Store) -> None:
        """Another body under the same key is refused and holds nothing."""
        await hold(store, "r-1", key="k")
        with pytest.raises(IdempotencyConflict):
            await hold(store, "r-2", key="k", body="b-2")
        with pytest.raises(NotFound):
            await store.review("r-2")

    async def test_an_unknown_review_is_not_found(self, store: Store) -> None:
        """No such id: NotFound for the review and its request."""
        with pytest.raises(NotFound):
            await store.review("r-9")
        with pytest.raises(NotFound):
            await store.review_request("r-9")

    async def test_pages_follow_the_cursor(self, store: Store) -> None:
        """Three held, pages of two: cursors 1, 2 then 3."""
        for n in range(3):
            await hold(store, f"r-{n}")
        first = await store.reviews_page(0, 2)
        rest = await store.reviews_page(first[-1].cursor, 2)
        assert [r.id for r in [*first, *rest]] == ["r-0", "r-1", "r-2"]


class TestApprove:
    async def test_approval_queues_the_message_and_shreds_the_request(self, store: Store) -> None:
        """Approved: the message is queued as a submit queues it, the request is gone."""
        await hold(store)
        approved = await approve(store)
        assert (approved.state, approved.message_id) == (ReviewState.APPROVED, "m-1")
        assert approved.decided_by == "case-system/SYN-reviewer-2"
        assert (await store.message_status("m-1")).status is Status.QUEUED
        assert [m.id for m in await store.due_outgoing(NOW, 10)] == ["m-1"]
        with pytest.raises(PayloadPurged):
            await store.review_request("r-1")

    async def test_approval_is_an_event_naming_the_message(self, store: Store) -> None:
        """review_pending then review_approved, the latter with the message id."""
        await hold(store)
        await approve(store)
        assert await events(store) == [
            ("review_pending", "r-1", None),
            ("review_approved", "r-1", "m-1"),
        ]

    async def test_a_second_approval_is_settled_and_sends_nothing_more(self, store: Store) -> None:
        """Approving twice: the second is ReviewSettled and queues no second message."""
        await hold(store)
        await approve(store)
        with pytest.raises(ReviewSettled):
            await approve(store, message_id="m-2")
        with pytest.raises(NotFound):
            await store.message_status("m-2")
        assert await store.outbox_depth() == 1

    async def test_racing_approvals_send_once(self, store: Store) -> None:
        """Ten approvals at once: exactly one succeeds, one message is queued."""
        await hold(store)
        results = await asyncio.gather(
            *(approve(store, message_id=f"m-{i}") for i in range(10)), return_exceptions=True
        )
        assert sum(isinstance(r, ReviewRecord) for r in results) == 1
        assert all(isinstance(r, ReviewRecord | ReviewSettled) for r in results)
        assert await store.outbox_depth() == 1


class TestReturnAndNarrow:
    async def test_a_returned_review_is_never_sent(self, store: Store) -> None:
        """Returned: settled with the reason, shredded, nothing queued, an event with reason."""
        await hold(store)
        returned = await store.return_review("r-1", "SYN: not enough detail", by="x", at=NOW)
        assert (returned.state, returned.note) == (ReviewState.RETURNED, "SYN: not enough detail")
        assert await store.outbox_depth() == 0
        with pytest.raises(PayloadPurged):
            await store.review_request("r-1")
        with pytest.raises(ReviewSettled):
            await approve(store)
        assert [e.reason for e in await store.events_page(0, 10)][-1] == "SYN: not enough detail"

    async def test_a_narrowing_stays_pending_with_fewer_fields(self, store: Store) -> None:
        """Narrowed: still pending, narrowed recorded, the request kept, an event."""
        await hold(store)
        narrowed = await store.narrow_review("r-1", ("referral_ref",), by="x", at=NOW)
        assert (narrowed.state, narrowed.narrowed) == (ReviewState.PENDING, ("referral_ref",))
        assert await store.review_request("r-1") == REQUEST
        assert (await events(store))[-1] == ("review_narrowed", "r-1", None)

    async def test_a_settled_review_cannot_be_narrowed_or_returned(self, store: Store) -> None:
        """After approval: narrowing and returning are ReviewSettled and change nothing."""
        await hold(store)
        await approve(store)
        with pytest.raises(ReviewSettled):
            await store.narrow_review("r-1", ("referral_ref",), by="x", at=NOW)
        with pytest.raises(ReviewSettled):
            await store.return_review("r-1", "SYN", by="x", at=NOW)
        assert (await store.review("r-1")).state is ReviewState.APPROVED
        assert len(await events(store)) == 2


class TestTime:
    async def test_an_overdue_review_escalates_once(self, store: Store) -> None:
        """Past due_at: escalated at the first pass only, one review_overdue event."""
        await hold(store)
        assert await store.escalate_overdue_reviews(NOW + timedelta(days=1)) == []
        later = NOW + timedelta(days=2)
        [escalated] = await store.escalate_overdue_reviews(later)
        assert (escalated.escalated_at, escalated.state) == (later, ReviewState.PENDING)
        assert await store.escalate_overdue_reviews(later + timedelta(hours=1)) == []
        assert [e for e, _, _ in await events(store)] == ["review_pending", "review_overdue"]

    async def test_a_review_held_past_its_expiry_expires_unsent(self, store: Store) -> None:
        """Past expires_at: expired, shredded, out of the pending list, approval refused."""
        await hold(store)
        [expired] = await store.expire_reviews(NOW + timedelta(days=14))
        assert expired.state is ReviewState.EXPIRED
        assert await store.reviews_page(0, 10) == []
        assert [r.id for r in await store.reviews_page(0, 10, pending_only=False)] == ["r-1"]
        with pytest.raises(ReviewSettled):
            await approve(store)
        assert await store.outbox_depth() == 0
        assert (await events(store))[-1][0] == "review_expired"


class TestStatusEvents:
    async def test_a_delivery_receipt_is_a_delivered_event(self, store: Store) -> None:
        """A delivered receipt adds one delivered event naming the message, its ISA and type."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        await store.record_receipt(envelope_id="m-1", frame=b"IRR1", status="delivered",
                                   reason="", at=NOW)  # fmt: skip
        [event] = await store.events_page(0, 10)
        assert (event.event, event.message_id, event.recipient) == ("delivered", "m-1",
                                                                    "syn-council")  # fmt: skip
        assert (event.message_type, event.client, event.reason) == (
            "marac_referral", "case-system", None)  # fmt: skip

    async def test_a_rejection_carries_its_reason_code(self, store: Store) -> None:
        """A rejected receipt: one rejected event with the receipt's reason."""
        await enqueue(store, "m-1")
        await store.record_receipt(envelope_id="m-1", frame=b"IRR1", status="rejected",
                                   reason="isa_violation", at=NOW)  # fmt: skip
        assert [(e.event, e.reason) for e in await store.events_page(0, 10)] == [
            ("rejected", "isa_violation")
        ]

    async def test_an_expiry_is_an_expired_event(self, store: Store) -> None:
        """A message past expires_at: one expired event (the non-delivery report)."""
        await enqueue(store, "m-1", ttl=timedelta(hours=1))
        await store.expire_overdue(NOW + timedelta(hours=2))
        assert [e.event for e in await store.events_page(0, 10)] == ["expired"]

    async def test_moves_that_change_nothing_are_not_events(self, store: Store) -> None:
        """A duplicate receipt, a copy rejected for how it arrived, a publish: no event."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        await store.record_receipt(envelope_id="m-1", frame=b"IRR1", status="rejected",
                                   reason="replay", at=NOW)  # fmt: skip
        for _ in range(2):
            await store.record_receipt(envelope_id="m-1", frame=b"IRR1", status="delivered",
                                       reason="", at=NOW)  # fmt: skip
        assert [e.event for e in await store.events_page(0, 10)] == ["delivered"]

    async def test_the_webhook_takes_each_event_once(self, store: Store) -> None:
        """Unpushed events, oldest first; a pushed one is not offered again; the feed keeps it."""
        await hold(store, "r-1")
        await hold(store, "r-2")
        first, second = await store.unpushed_events(10)
        await store.mark_event_pushed(first.id, NOW)
        assert [e.id for e in await store.unpushed_events(10)] == [second.id]
        assert len(await store.events_page(0, 10)) == 2
        with pytest.raises(NotFound):
            await store.mark_event_pushed("no-such-event", NOW)

    async def test_the_feed_pages_by_cursor(self, store: Store) -> None:
        """Cursors increase; after=N gives the events past N."""
        for n in range(5):
            await hold(store, f"r-{n}")
        page = await store.events_page(0, 3)
        rest = await store.events_page(page[-1].cursor, 10)
        cursors = [e.cursor for e in [*page, *rest]]
        assert cursors == sorted(cursors)
        assert len(set(cursors)) == 5
