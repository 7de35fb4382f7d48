"""The Store contract: every implementation (SQLite, the in-memory fake) must pass all of it."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from agent.errors import IdempotencyConflict, NotFound
from agent.store import PayloadPurged, Store
from federation.outbox import IllegalTransition, Status
from tests.unit.agent.conftest import NOW, enqueue, header

RECEIPT = b"IRR1-synthetic-receipt"


class TestIdempotency:
    async def test_the_same_key_and_body_returns_the_first_id(self, store: Store) -> None:
        """A retried identical request is not queued twice: it gets the first id back."""
        first = await enqueue(store, "m-1", key="k-1")
        again = await enqueue(store, "m-2", key="k-1")
        assert (first.id, first.created) == ("m-1", True)
        assert (again.id, again.created, again.status) == ("m-1", False, Status.QUEUED)
        assert await store.outbox_depth() == 1

    async def test_the_same_key_with_another_body_is_a_conflict(self, store: Store) -> None:
        """Reusing a key for a different body is refused (HTTP 409) and stores nothing."""
        await enqueue(store, "m-1", key="k-1")
        with pytest.raises(IdempotencyConflict):
            await enqueue(store, "m-2", key="k-1", body=b'{"synthetic":true,"ref":"SYN-0002"}')
        assert await store.outbox_depth() == 1
        with pytest.raises(NotFound):
            await store.message_status("m-2")

    async def test_keys_are_scoped_per_client(self, store: Store) -> None:
        """Two case systems may use the same key independently."""
        a = await enqueue(store, "m-1", key="k-1", client="case-a")
        b = await enqueue(store, "m-2", key="k-1", client="case-b")
        assert (a.id, b.id, b.created) == ("m-1", "m-2", True)

    async def test_reusing_a_message_id_is_a_conflict(self, store: Store) -> None:
        """A second message with an id already in the outbox is refused, not overwritten."""
        await enqueue(store, "m-1")
        with pytest.raises(IdempotencyConflict):
            await enqueue(store, "m-1", body=b"other")
        assert (await store.due_outgoing(NOW, 10))[0].frame.startswith(b"IRL1m-1{")

    async def test_requests_without_a_key_are_always_new(self, store: Store) -> None:
        """No key, no deduplication."""
        await enqueue(store, "m-1")
        await enqueue(store, "m-2")
        assert await store.outbox_depth() == 2

    async def test_concurrent_identical_requests_store_one_message(self, store: Store) -> None:
        """Racing retries of one request still queue exactly one message."""
        results = await asyncio.gather(*(enqueue(store, f"m-{i}", key="k") for i in range(20)))
        assert {r.id for r in results} == {results[0].id}
        assert sum(r.created for r in results) == 1
        assert await store.outbox_depth() == 1


class TestOutbox:
    async def test_a_new_message_is_queued_with_history(self, store: Store) -> None:
        """Enqueue records status queued and one history entry."""
        await enqueue(store, "m-1")
        status = await store.message_status("m-1")
        assert (status.status, status.recipient, status.attempts) == (
            Status.QUEUED,
            "syn-council",
            0,
        )
        assert [h.status for h in status.history] == [Status.QUEUED]
        assert status.header == header("m-1")
        assert status.receipt is None

    async def test_due_returns_queued_messages_in_order(self, store: Store) -> None:
        """The relay gets due queued messages, oldest first, up to the limit."""
        await enqueue(store, "m-1", now=NOW)
        await enqueue(store, "m-2", now=NOW + timedelta(seconds=1))
        await enqueue(store, "m-3", now=NOW + timedelta(seconds=2))
        due = await store.due_outgoing(NOW + timedelta(seconds=5), limit=2)
        assert [m.id for m in due] == ["m-1", "m-2"]
        assert due[0].frame.startswith(b"IRL1m-1")
        assert due[0].recipient == "syn-council"

    async def test_sent_messages_are_no_longer_due(self, store: Store) -> None:
        """Once confirmed by the broker, a message is sent and leaves the due list."""
        await enqueue(store, "m-1")
        assert await store.mark_sent("m-1", NOW) is Status.SENT
        assert await store.due_outgoing(NOW, limit=10) == []
        assert await store.outbox_depth() == 0
        assert (await store.message_status("m-1")).attempts == 1

    async def test_confirming_a_sent_message_again_is_illegal_and_changes_nothing(
        self, store: Store
    ) -> None:
        """An illegal move raises IllegalTransition and leaves status and attempts alone."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        with pytest.raises(IllegalTransition):
            await store.mark_sent("m-1", NOW)
        status = await store.message_status("m-1")
        assert (status.status, status.attempts, len(status.history)) == (Status.SENT, 1, 2)

    async def test_a_failed_attempt_backs_off(self, store: Store) -> None:
        """A failed publish is retried only after its backoff."""
        await enqueue(store, "m-1")
        await store.mark_attempt_failed("m-1", NOW, timedelta(seconds=30), "broker down")
        assert await store.due_outgoing(NOW + timedelta(seconds=29), limit=10) == []
        due = await store.due_outgoing(NOW + timedelta(seconds=30), limit=10)
        assert [(m.id, m.attempts) for m in due] == [("m-1", 1)]
        details = [h.detail for h in (await store.message_status("m-1")).history]
        assert details[-1] == "attempt 1 failed: broker down"

    async def test_a_local_failure_rejects_the_message(self, store: Store) -> None:
        """An unroutable message ends rejected and is not retried."""
        await enqueue(store, "m-1")
        assert await store.mark_failed("m-1", NOW, "unroutable") is Status.REJECTED
        assert await store.due_outgoing(NOW, limit=10) == []

    async def test_expired_messages_are_not_due(self, store: Store) -> None:
        """A message past expires_at is never published."""
        await enqueue(store, "m-1", ttl=timedelta(hours=1))
        assert await store.due_outgoing(NOW + timedelta(hours=1), limit=10) == []

    async def test_expire_overdue_moves_queued_and_sent_to_expired(self, store: Store) -> None:
        """Uncollected messages past expiry end expired, and their ids are returned."""
        await enqueue(store, "m-1", ttl=timedelta(hours=1))
        await enqueue(store, "m-2", ttl=timedelta(hours=1))
        await enqueue(store, "m-3", ttl=timedelta(days=2))
        await store.mark_sent("m-2", NOW)
        expired = await store.expire_overdue(NOW + timedelta(hours=2))
        assert sorted(expired) == ["m-1", "m-2"]
        assert (await store.message_status("m-2")).status is Status.EXPIRED
        assert (await store.message_status("m-3")).status is Status.QUEUED
        assert await store.expire_overdue(NOW + timedelta(hours=2)) == []

    async def test_unknown_message_status_is_not_found(self, store: Store) -> None:
        """Asking for an id that was never queued is NotFound (HTTP 404)."""
        with pytest.raises(NotFound):
            await store.message_status("nope")

    async def test_marking_an_unknown_message_is_not_found(self, store: Store) -> None:
        """Status moves on unknown ids are NotFound."""
        with pytest.raises(NotFound):
            await store.mark_sent("nope", NOW)


class TestReceipts:
    async def test_a_delivered_receipt_settles_the_message(self, store: Store) -> None:
        """The receipt is kept byte for byte and the status becomes delivered."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        outcome = await store.record_receipt(
            envelope_id="m-1", frame=RECEIPT, status="delivered", reason="", at=NOW
        )
        status = await store.message_status("m-1")
        assert outcome == "applied"
        assert status.status is Status.DELIVERED
        assert status.receipt is not None
        assert (status.receipt.frame, status.receipt.status) == (RECEIPT, "delivered")
        assert [h.status for h in status.history] == [
            Status.QUEUED,
            Status.SENT,
            Status.DELIVERED,
        ]

    async def test_a_rejection_receipt_carries_its_reason(self, store: Store) -> None:
        """A rejected receipt moves to rejected and keeps the reason code."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        await store.record_receipt(
            envelope_id="m-1", frame=RECEIPT, status="rejected", reason="isa_violation", at=NOW
        )
        status = await store.message_status("m-1")
        assert status.status is Status.REJECTED
        assert status.receipt is not None
        assert status.receipt.reason == "isa_violation"

    async def test_a_duplicate_receipt_is_ignored(self, store: Store) -> None:
        """Receiving the same receipt twice changes nothing the second time."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        kwargs = {"envelope_id": "m-1", "frame": RECEIPT, "reason": "", "at": NOW}
        await store.record_receipt(status="delivered", **kwargs)  # type: ignore[arg-type]
        again = await store.record_receipt(status="delivered", **kwargs)  # type: ignore[arg-type]
        assert again == "ignored"
        assert (await store.message_status("m-1")).status is Status.DELIVERED

    async def test_a_late_rejection_after_delivery_is_ignored(self, store: Store) -> None:
        """Terminal statuses are final: a contradicting later receipt does not move them."""
        await enqueue(store, "m-1")
        await store.record_receipt(
            envelope_id="m-1", frame=RECEIPT, status="delivered", reason="", at=NOW
        )
        late = await store.record_receipt(
            envelope_id="m-1", frame=b"other", status="rejected", reason="replay", at=NOW
        )
        status = await store.message_status("m-1")
        assert late == "ignored"
        assert status.status is Status.DELIVERED
        assert status.receipt is not None
        assert status.receipt.frame == RECEIPT

    async def test_a_receipt_before_the_sent_commit_still_counts(self, store: Store) -> None:
        """A receipt overtaking mark_sent delivers the message; the late confirm is ignored."""
        await enqueue(store, "m-1")
        await store.record_receipt(
            envelope_id="m-1", frame=RECEIPT, status="delivered", reason="", at=NOW
        )
        assert await store.mark_sent("m-1", NOW) is Status.DELIVERED
        assert (await store.message_status("m-1")).status is Status.DELIVERED

    async def test_rejection_overridden_when_the_true_recipient_later_delivers(
        self, store: Store
    ) -> None:
        """Rejected then delivered ends delivered, and the delivered receipt is the one kept."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        await store.record_receipt(
            envelope_id="m-1", frame=b"IRR1-rejected", status="rejected", reason="key_unknown",
            at=NOW,
        )  # fmt: skip
        outcome = await store.record_receipt(
            envelope_id="m-1", frame=RECEIPT, status="delivered", reason="", at=NOW
        )
        status = await store.message_status("m-1")
        assert (outcome, status.status) == ("applied", Status.DELIVERED)
        assert status.receipt is not None
        assert (status.receipt.frame, status.receipt.status) == (RECEIPT, "delivered")

    async def test_transport_identity_rejection_of_a_copy_leaves_the_message_sent(
        self, store: Store
    ) -> None:
        """A copy refused for how it arrived is noted in the history; the status stays sent."""
        await enqueue(store, "m-1")
        await store.mark_sent("m-1", NOW)
        outcome = await store.record_receipt(
            envelope_id="m-1", frame=b"IRR1-copy", status="rejected",
            reason="transport_identity", at=NOW,
        )  # fmt: skip
        status = await store.message_status("m-1")
        assert (outcome, status.status, status.receipt) == ("ignored", Status.SENT, None)
        assert status.history[-1].detail == (
            "ignored (copy_rejected): receipt: rejected (transport_identity)"
        )

    async def test_a_sent_envelope_names_its_recipient_and_frame_hash(self, store: Store) -> None:
        """What a receipt is checked against: the recipient and SHA-256 of the frame sent."""
        await enqueue(store, "m-1", recipient="syn-health")
        sent = await store.sent_envelope("m-1")
        frame = b"IRL1m-1" + b'{"synthetic":true,"ref":"SYN-0001"}'
        assert (sent.recipient, sent.frame_sha256) == (
            "syn-health", hashlib.sha256(frame).hexdigest()
        )

    async def test_the_sent_envelope_of_an_unknown_id_is_not_found(self, store: Store) -> None:
        """Looking up an envelope we never sent is NotFound."""
        with pytest.raises(NotFound):
            await store.sent_envelope("nope")

    async def test_a_receipt_for_an_unknown_envelope_is_reported_unknown(
        self, store: Store
    ) -> None:
        """A receipt for something we never sent is not an error, just unknown."""
        outcome = await store.record_receipt(
            envelope_id="nope", frame=RECEIPT, status="delivered", reason="", at=NOW
        )
        assert outcome == "unknown"


async def accept(store: Store, envelope_id: str, payload: bytes = b'{"ref":"SYN-0001"}') -> bool:
    return await store.accept_incoming(
        envelope_id=envelope_id,
        sender="syn-police",
        header=header(envelope_id, "syn-council"),
        payload=payload,
        now=NOW,
    )


class TestInbox:
    async def test_an_accepted_delivery_is_readable(self, store: Store) -> None:
        """A delivery comes back with its header and its exact payload."""
        assert await accept(store, "e-1", b'{"synthetic":true}') is True
        [item] = await store.inbox_page(0, 10)
        assert (item.id, item.sender, item.header, item.acked_at) == (
            "e-1",
            "syn-police",
            header("e-1", "syn-council"),
            None,
        )
        assert await store.read_inbox_payload("e-1") == b'{"synthetic":true}'

    async def test_a_duplicate_delivery_is_refused(self, store: Store) -> None:
        """The same envelope id twice reaches the inbox once."""
        assert await accept(store, "e-1") is True
        assert await accept(store, "e-1", b"different") is False
        assert [i.id for i in await store.inbox_page(0, 10)] == ["e-1"]
        assert await store.read_inbox_payload("e-1") == b'{"ref":"SYN-0001"}'

    async def test_concurrent_duplicates_reach_the_inbox_once(self, store: Store) -> None:
        """Racing redeliveries of one envelope: exactly one is accepted."""
        results = await asyncio.gather(*(accept(store, "e-1") for _ in range(10)))
        assert sorted(results) == [False] * 9 + [True]

    async def test_an_envelope_marked_seen_is_not_accepted_later(self, store: Store) -> None:
        """A rejected envelope's id, once seen, blocks a later replay of it."""
        assert await store.mark_seen("e-1", NOW) is True
        assert await store.mark_seen("e-1", NOW) is False
        assert await accept(store, "e-1") is False

    async def test_forgotten_seen_ids_are_only_the_old_ones(self, store: Store) -> None:
        """forget_seen_before drops ids seen before the cutoff and keeps the rest."""
        await store.mark_seen("old", NOW - timedelta(days=30))
        await store.mark_seen("new", NOW)
        assert await store.forget_seen_before(NOW - timedelta(days=1)) == 1
        assert await store.mark_seen("old", NOW) is True
        assert await store.mark_seen("new", NOW) is False

    async def test_cursor_paging_visits_every_delivery_once_in_order(self, store: Store) -> None:
        """Paging with the last cursor seen walks the inbox without gaps or repeats."""
        for i in range(7):
            await accept(store, f"e-{i}")
        seen: list[str] = []
        cursor = 0
        while page := await store.inbox_page(cursor, 3):
            seen += [item.id for item in page]
            cursor = page[-1].cursor
        assert seen == [f"e-{i}" for i in range(7)]

    async def test_cursors_only_increase(self, store: Store) -> None:
        """Later deliveries always have larger cursors."""
        for i in range(5):
            await accept(store, f"e-{i}")
        cursors = [item.cursor for item in await store.inbox_page(0, 10)]
        assert cursors == sorted(cursors)
        assert len(set(cursors)) == 5

    async def test_ack_is_recorded_and_idempotent(self, store: Store) -> None:
        """Acking stamps acked_at once; a second ack keeps the first time."""
        await accept(store, "e-1")
        await store.ack("e-1", NOW + timedelta(minutes=1))
        await store.ack("e-1", NOW + timedelta(minutes=5))
        [item] = await store.inbox_page(0, 10)
        assert item.acked_at == NOW + timedelta(minutes=1)

    async def test_only_the_first_ack_reports_that_it_acknowledged(self, store: Store) -> None:
        """ack is True for the call that acknowledged, False for every repeat (audited once)."""
        await accept(store, "e-1")
        firsts = [await store.ack("e-1", NOW + timedelta(minutes=n)) for n in range(3)]
        assert firsts == [True, False, False]

    async def test_acked_deliveries_can_be_left_out(self, store: Store) -> None:
        """unacked_only pages only what the case system has not taken yet."""
        await accept(store, "e-1")
        await accept(store, "e-2")
        await store.ack("e-1", NOW)
        assert [i.id for i in await store.inbox_page(0, 10, unacked_only=True)] == ["e-2"]

    async def test_acking_an_unknown_delivery_is_not_found(self, store: Store) -> None:
        """Ack of an unknown id is NotFound (HTTP 404)."""
        with pytest.raises(NotFound):
            await store.ack("nope", NOW)

    async def test_a_purged_payload_says_it_is_purged(self, store: Store) -> None:
        """After purge, reading the payload raises PayloadPurged; the header stays."""
        await accept(store, "e-1")
        await store.purge_inbox_payload("e-1", NOW)
        with pytest.raises(PayloadPurged):
            await store.read_inbox_payload("e-1")
        [item] = await store.inbox_page(0, 10)
        assert item.purged is True

    async def test_purging_twice_is_harmless(self, store: Store) -> None:
        """Purge is idempotent."""
        await accept(store, "e-1")
        await store.purge_inbox_payload("e-1", NOW)
        await store.purge_inbox_payload("e-1", NOW)
        with pytest.raises(PayloadPurged):
            await store.read_inbox_payload("e-1")

    async def test_retention_purges_only_what_was_received_before_the_cutoff(
        self, store: Store
    ) -> None:
        """purge_received_before shreds old payloads (acked or not), once, and keeps new ones."""
        for i, age in enumerate([40, 35, 1]):
            await store.accept_incoming(
                envelope_id=f"e-{i}",
                sender="syn-police",
                header=header(f"e-{i}"),
                payload=b"SYN",
                now=NOW - timedelta(days=age),
            )
        await store.ack("e-0", NOW)
        cutoff = NOW - timedelta(days=30)
        assert await store.purge_received_before(cutoff, NOW) == ["e-0", "e-1"]
        assert await store.purge_received_before(cutoff, NOW) == []
        assert await store.read_inbox_payload("e-2") == b"SYN"
        with pytest.raises(PayloadPurged):
            await store.read_inbox_payload("e-1")

    async def test_reading_an_unknown_payload_is_not_found(self, store: Store) -> None:
        """Unknown ids are NotFound, not PayloadPurged."""
        with pytest.raises(NotFound) as caught:
            await store.read_inbox_payload("nope")
        assert not isinstance(caught.value, PayloadPurged)
