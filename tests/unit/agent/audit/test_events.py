"""Specification of agent.audit.events: one factory for events about a message, and one rule
for an audit write that fails after the operation's own commit (issue 14, point 1)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from agent.audit import AuditEvent, Flow, message_event, record_after_commit
from agent.errors import StoreUnavailable
from federation.envelope import seal
from federation.receive import open_envelope
from tests.unit.federation.helpers import NOW, Federation

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FLOW = Flow(
    isa_id="syn-isa", isa_version="1.0.0", purpose="safeguarding",
    message_type="marac_referral", risk="high", lawful_basis={"art6": ["e"]},
)  # fmt: skip
LOG = logging.getLogger("test-audit-events")


class Sink:
    """A sink that fails the events whose outcome is in ``failing`` with that error."""

    def __init__(self, failing: dict[str, BaseException] | None = None) -> None:
        self.queued: list[AuditEvent] = []
        self._failing = failing or {}

    def record(self, event: AuditEvent, at: datetime) -> asyncio.Future[None]:
        self.queued.append(event)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        error = self._failing.get(event.outcome or "")
        future.set_result(None) if error is None else future.set_exception(error)
        return future


class TestMessageEvent:
    def test_the_flow_fills_the_s62_fields(self) -> None:
        """An event built from a flow says the same as one built field by field."""
        event = message_event("send", "agent", "m-1", "syn-council", FLOW, outcome="sent")
        assert event == AuditEvent(
            "send", "agent", "m-1", "syn-council", "syn-isa", "1.0.0", "safeguarding",
            "marac_referral", "high", {"art6": ["e"]}, "sent",
        )  # fmt: skip

    def test_without_a_flow_the_fields_are_left_for_the_log_to_inherit(self) -> None:
        """An event without a flow leaves ISA, purpose, type, risk and basis empty."""
        event = message_event("ack", "case-system", "m-1")
        assert (event.isa_id, event.purpose, event.risk, dict(event.lawful_basis)) == (
            None, None, None, {},
        )  # fmt: skip

    def test_a_header_model_and_its_stored_json_give_the_same_flow(self) -> None:
        """Flow.of_header reads the envelope header model and its JSON form alike."""
        fed = Federation()
        police, council = fed.agencies["syn-police"], fed.agencies["syn-council"]
        frame = seal(
            {"synthetic": True}, fed.spec(), signing_key=police.signing,
            recipient_public=council.encryption.public, now=NOW,
        )  # fmt: skip
        header = open_envelope(
            frame, recipient="syn-council", keyring=council.keyring, manifest=fed.manifest(),
            now=NOW, seen=lambda _id: False,
        ).header  # fmt: skip
        assert Flow.of_header(header) == Flow.of_header(header.to_json())
        assert Flow.of_header(header).isa_id == header.isa.id


class TestRecordAfterCommit:
    async def test_events_are_queued_when_called_in_order(self) -> None:
        """The events are handed to the sink before anyone awaits, in the order given."""
        sink = Sink()
        first, second = message_event("decision", "c", "m-1"), message_event("submit", "c", "m-1")
        pending = record_after_commit(sink, T0, first, second, log=LOG, done="queued")
        assert sink.queued == [first, second]
        assert await pending is True

    async def test_a_full_disk_after_the_commit_is_logged_not_raised(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """StoreUnavailable after the commit gives False and one ERROR line naming the id."""
        sink = Sink({"sent": StoreUnavailable("disk full")})
        event = message_event("send", "agent", "m-7", outcome="sent")
        with caplog.at_level(logging.ERROR, logger=LOG.name):
            assert await record_after_commit(sink, T0, event, log=LOG, done="sent") is False
        assert [r.getMessage() for r in caplog.records] == [
            "sent m-7 but could not write its audit entry"
        ]

    async def test_one_failed_entry_of_several_is_logged_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """When one of a decision and its submit cannot be written, one ERROR line says so."""
        sink = Sink({"queued": StoreUnavailable("disk full")})
        decided = message_event("decision", "c", "m-2")
        events = (decided, message_event("submit", "c", "m-2", outcome="queued"))
        with caplog.at_level(logging.ERROR, logger=LOG.name):
            assert await record_after_commit(sink, T0, *events, log=LOG, done="queued") is False
        assert len(caplog.records) == 1

    async def test_a_bug_in_the_audit_write_still_propagates(self) -> None:
        """Only StoreUnavailable is absorbed: any other error reaches the caller."""
        sink = Sink({"sent": RuntimeError("synthetic bug")})
        event = message_event("send", "agent", "m-8", outcome="sent")
        with pytest.raises(RuntimeError, match="synthetic bug"):
            await record_after_commit(sink, T0, event, log=LOG, done="sent")
