"""The outbox state machine: one literal table, terminal statuses are final."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.outbox import (
    TERMINAL,
    TRANSITIONS,
    Event,
    IllegalTransition,
    Status,
    is_terminal,
    transition,
)


class TestHappyPaths:
    def test_a_confirmed_publish_moves_queued_to_sent(self) -> None:
        """The broker's confirm is what makes a queued message sent."""
        assert transition(Status.QUEUED, Event.PUBLISHED) is Status.SENT

    def test_a_delivered_receipt_moves_sent_to_delivered(self) -> None:
        """A verified delivered receipt settles a sent message."""
        assert transition(Status.SENT, Event.RECEIPT_DELIVERED) is Status.DELIVERED

    def test_a_rejected_receipt_moves_sent_to_rejected(self) -> None:
        """A verified rejection receipt settles a sent message as rejected."""
        assert transition(Status.SENT, Event.RECEIPT_REJECTED) is Status.REJECTED

    def test_expiry_moves_sent_to_expired(self) -> None:
        """A message nobody collected in time ends expired."""
        assert transition(Status.SENT, Event.EXPIRED) is Status.EXPIRED

    def test_a_receipt_counts_even_before_the_sent_status_was_committed(self) -> None:
        """A receipt can overtake the commit of 'sent' (rule 2)."""
        assert transition(Status.QUEUED, Event.RECEIPT_DELIVERED) is Status.DELIVERED

    def test_a_local_failure_rejects_a_queued_message(self) -> None:
        """An unroutable message that never left ends rejected."""
        assert transition(Status.QUEUED, Event.FAILED_LOCALLY) is Status.REJECTED


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


class TestTerminalStatuses:
    @given(st.sampled_from(sorted(TERMINAL)), st.sampled_from(list(Event)))
    def test_every_event_in_a_terminal_status_is_ignored(
        self, status: Status, event: Event
    ) -> None:
        """A late or duplicate event never moves a settled message (rule 5)."""
        assert transition(status, event) is status

    def test_exactly_delivered_rejected_and_expired_are_terminal(self) -> None:
        """The terminal set is the three settled statuses."""
        assert {s for s in Status if is_terminal(s)} == {
            Status.DELIVERED,
            Status.REJECTED,
            Status.EXPIRED,
        }

    def test_the_table_never_leaves_a_terminal_status(self) -> None:
        """No table entry starts from a terminal status (they are handled by rule 5)."""
        assert not any(start in TERMINAL for start, _ in TRANSITIONS)

    @given(st.lists(st.sampled_from(list(Event)), max_size=12))
    def test_any_event_sequence_ends_in_a_known_status_or_raises_illegal(
        self, events: list[Event]
    ) -> None:
        """Replaying any event sequence either follows the table or raises IllegalTransition."""
        status = Status.QUEUED
        for event in events:
            try:
                status = transition(status, event)
            except IllegalTransition:
                assert (status, event) not in TRANSITIONS
        assert status in set(Status)
