"""The outbox state machine: one literal table; delivered and expired are final, a delivery
overrides a rejection, and a copy rejected for how it arrived changes nothing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.outbox import (
    SETTLED,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Status,
    is_settled,
    transition,
)

Q, S, D, R, X = Status.QUEUED, Status.SENT, Status.DELIVERED, Status.REJECTED, Status.EXPIRED
PUB, OK, NO = Event.PUBLISHED, Event.RECEIPT_DELIVERED, Event.RECEIPT_REJECTED
COPY, EXP, FAIL = Event.COPY_REJECTED, Event.EXPIRED, Event.FAILED_LOCALLY

#: Every legal move, restated here independently of the table (status, event, next status).
EXPECTED = [
    (Q, PUB, S), (Q, OK, D), (Q, NO, R), (Q, COPY, Q), (Q, EXP, X), (Q, FAIL, R),
    (S, OK, D), (S, NO, R), (S, COPY, S), (S, EXP, X),
    (D, PUB, D), (D, OK, D), (D, NO, D), (D, COPY, D), (D, EXP, D), (D, FAIL, D),
    (R, PUB, R), (R, OK, D), (R, NO, R), (R, COPY, R), (R, EXP, R), (R, FAIL, R),
    (X, PUB, X), (X, OK, X), (X, NO, X), (X, COPY, X), (X, EXP, X), (X, FAIL, X),
]  # fmt: skip
ILLEGAL = [(S, PUB), (S, FAIL)]


class TestTheTable:
    @pytest.mark.parametrize(
        ("status", "event", "after"), EXPECTED, ids=[f"{s}-{e}" for s, e, _ in EXPECTED]
    )
    def test_every_legal_move_goes_where_the_rules_say(
        self, status: Status, event: Event, after: Status
    ) -> None:
        """Each (status, event) pair the rules allow leads to the status they name."""
        assert transition(status, event) is after

    def test_the_table_holds_exactly_the_legal_moves(self) -> None:
        """Nothing is in the table that the rules do not allow, and nothing allowed is missing."""
        assert {(s, e): a for s, e, a in EXPECTED} == TRANSITIONS

    def test_every_pair_is_either_legal_or_one_of_the_two_illegal_ones(self) -> None:
        """The table plus the two illegal pairs cover every status and event."""
        pairs = {(s, e) for s in Status for e in Event}
        assert pairs - set(TRANSITIONS) == set(ILLEGAL)


class TestIllegalMoves:
    def test_publishing_a_sent_message_again_is_illegal(self) -> None:
        """Only queued messages are published (rule 4)."""
        with pytest.raises(IllegalTransition) as caught:
            transition(Status.SENT, Event.PUBLISHED)
        assert (caught.value.current, caught.value.event) == (Status.SENT, Event.PUBLISHED)

    def test_a_local_failure_after_the_broker_took_the_message_is_illegal(self) -> None:
        """Once confirmed, the message is the broker's: it can't fail locally (rule 3)."""
        with pytest.raises(IllegalTransition):
            transition(Status.SENT, Event.FAILED_LOCALLY)


class TestReceipts:
    def test_rejection_overridden_by_a_later_delivery_from_the_true_recipient(self) -> None:
        """A rejected message the true recipient then delivers ends delivered (rule 6)."""
        assert transition(Status.REJECTED, Event.RECEIPT_DELIVERED) is Status.DELIVERED

    def test_copy_rejected_for_its_arrival_leaves_a_sent_message_sent(self) -> None:
        """A transport_identity or replay rejection of one copy does not settle (rule 7)."""
        assert transition(Status.SENT, Event.COPY_REJECTED) is Status.SENT

    def test_delivered_is_final_against_a_later_rejection(self) -> None:
        """No rejection, of the frame or of a copy, moves a delivered message (rule 5)."""
        assert transition(Status.DELIVERED, Event.RECEIPT_REJECTED) is Status.DELIVERED

    def test_expired_ignores_a_late_delivery(self) -> None:
        """A delivery receipt after the non-delivery report changes nothing (rule 8)."""
        assert transition(Status.EXPIRED, Event.RECEIPT_DELIVERED) is Status.EXPIRED

    @given(st.lists(st.sampled_from(list(Event)), max_size=12))
    def test_a_delivery_receipt_ends_delivered_unless_already_expired(
        self, events: list[Event]
    ) -> None:
        """Whatever came before or after it, a delivered receipt wins unless expiry came first."""
        status = _replay(Status.QUEUED, events)
        at_delivery = status
        status = _replay(status, [Event.RECEIPT_DELIVERED, *reversed(events)])
        assert status is (Status.EXPIRED if at_delivery is Status.EXPIRED else Status.DELIVERED)


def _replay(status: Status, events: list[Event]) -> Status:
    for event in events:
        if (status, event) not in ILLEGAL:
            status = transition(status, event)
    return status


class TestSettled:
    def test_exactly_delivered_rejected_and_expired_are_settled(self) -> None:
        """Settled messages are neither published again nor expired."""
        assert {s for s in Status if is_settled(s)} == SETTLED == {D, R, X}
