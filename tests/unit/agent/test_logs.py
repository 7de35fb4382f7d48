"""The AMQP libraries' connection records are DEBUG, not warnings (``agent.logs`` rule 4): the
broker session's one line per attempt is the only one an operator sees."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from agent.logs import quiet_amqp_logs


def records(caplog: pytest.LogCaptureFixture, name: str) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == name]


@pytest.fixture(autouse=True)
def _aiormq_level_unset() -> Iterator[None]:
    """``isa-agent check`` (run in-process by other unit tests) sets ``aiormq`` to CRITICAL."""
    logger = logging.getLogger("aiormq")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


class TestQuietAmqpLogs:
    def test_aiormq_connection_errors_are_dropped_below_debug(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Regression (3,239 lines in 27 minutes): a failed attempt's ERROR is not shown."""
        quiet_amqp_logs()
        caplog.set_level(logging.INFO)
        logging.getLogger("aiormq.connection").error("error when creating transport: %r", "x")
        assert records(caplog, "aiormq.connection") == []

    def test_they_are_kept_as_debug_where_debug_is_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """At DEBUG the record is still there, at DEBUG level."""
        quiet_amqp_logs()
        caplog.set_level(logging.DEBUG)
        logging.getLogger("aiormq.connection").error("Unexpected connection close from remote")
        assert records(caplog, "aiormq.connection") == [
            ("DEBUG", "Unexpected connection close from remote")
        ]

    def test_only_the_cancel_notices_of_aiormq_channel_are_demoted(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """aiormq.channel keeps its other warnings (they are not about reconnecting)."""
        quiet_amqp_logs()
        caplog.set_level(logging.INFO)
        channel = logging.getLogger("aiormq.channel")
        channel.warning("Consumer %r cancelled by the broker on %r", "ctag", "ch")
        channel.warning("Closing channel %r because RPC call %s cancelled", "ch", "Qos")
        channel.warning("Frame %r has no consumer tag", "f")
        assert records(caplog, "aiormq.channel") == [("WARNING", "Frame 'f' has no consumer tag")]

    def test_critical_records_are_never_demoted(self, caplog: pytest.LogCaptureFixture) -> None:
        quiet_amqp_logs()
        caplog.set_level(logging.INFO)
        logging.getLogger("aiormq.connection").critical("synthetic critical")
        assert records(caplog, "aiormq.connection") == [("CRITICAL", "synthetic critical")]

    def test_installing_twice_adds_one_filter(self) -> None:
        quiet_amqp_logs()
        quiet_amqp_logs()
        assert len(logging.getLogger("aiormq.connection").filters) == 1
