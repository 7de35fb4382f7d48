"""Specification of agent.audit.repeats: the first event of a key per window is recorded, the
rest are counted into one summary entry, and memory stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.audit import AuditEvent, RepeatAudit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
ACK = AuditEvent("ack", "case-system", "msg-1")


class ListSink:
    """An audit sink that keeps what it was given (a fake: this module does no I/O)."""

    def __init__(self) -> None:
        self.events: list[tuple[AuditEvent, datetime]] = []

    async def record(self, event: AuditEvent, at: datetime) -> None:
        self.events.append((event, at))


class TestRepeatAudit:
    async def test_only_the_first_event_of_a_window_is_admitted(self) -> None:
        """admit is True once per key per window, then False."""
        repeats = RepeatAudit(ListSink(), window=WINDOW)
        admitted = [await repeats.admit(("replay", "police"), ACK, T0) for _ in range(5)]
        assert admitted == [True, False, False, False, False]

    async def test_a_closed_window_writes_one_summary_with_the_count(self) -> None:
        """flush after the window writes one repeat entry naming how many were counted."""
        sink = ListSink()
        repeats = RepeatAudit(sink, window=WINDOW)
        for n in range(50):
            await repeats.count(("ack", "case-system", "msg-1"), ACK, T0 + timedelta(seconds=n))
        assert await repeats.flush(T0 + WINDOW) == 1
        [(summary, _)] = sink.events
        assert (summary.action, summary.message_id, summary.actor) == (
            "repeat",
            "msg-1",
            "case-system",
        )
        assert summary.detail == "50 more ack between 2026-03-01T09:00:00Z and 2026-03-01T09:00:49Z"

    async def test_an_open_window_is_not_flushed_early(self) -> None:
        """flush before the window has passed writes nothing."""
        sink = ListSink()
        repeats = RepeatAudit(sink, window=WINDOW)
        await repeats.count(("ack",), ACK, T0)
        assert await repeats.flush(T0 + WINDOW - timedelta(seconds=1)) == 0
        assert sink.events == []

    async def test_close_writes_every_counted_window(self) -> None:
        """Shutdown loses no count: close summarises every open window that counted."""
        sink = ListSink()
        repeats = RepeatAudit(sink, window=WINDOW)
        await repeats.admit(("a",), ACK, T0)  # admitted, nothing counted: no summary
        await repeats.count(("b",), ACK, T0)
        assert await repeats.close(T0) == 1
        assert len(repeats) == 0

    async def test_open_windows_are_bounded_and_an_evicted_one_is_summarised(self) -> None:
        """Past max_keys the oldest window closes and its count is written, not dropped."""
        sink = ListSink()
        repeats = RepeatAudit(sink, window=WINDOW, max_keys=3)
        for n in range(10):
            await repeats.count((f"k{n}",), ACK, T0)
        assert len(repeats) == 3
        assert len(sink.events) == 7
