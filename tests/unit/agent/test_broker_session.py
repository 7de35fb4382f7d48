"""The broker session's reconnection policy (``agent.broker_session``): one line per attempt,
waits that double to their cap, the last URL that answered tried first, a refusal that stops.

Transports here are scripted: an ``AmqpTransport`` whose ``open`` fails or succeeds as told,
never connecting (the real transport and session are tested on RabbitMQ in
``tests/integration/test_transport.py``). Waits are recorded, never slept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Self

import pytest

from agent.broker_session import BrokerSession
from agent.errors import TransportError
from agent.transport import AccessRefused, AmqpTransport, ConnectionLost, JitteredBackoff

URLS = ["amqp://one.invalid/v", "amqp://two.invalid/v", "amqp://three.invalid/v"]
BACKOFF = JitteredBackoff(initial=1.0, maximum=8.0, jitter=0.5)

#: what each attempt does: an exception its ``open`` raises, or an int (the URL that answered)
Script = list[TransportError | int]


class Scripted(AmqpTransport):
    """An AmqpTransport whose ``open`` follows the script and which never connects."""

    def __init__(self, urls: Sequence[str], outcome: TransportError | int) -> None:
        super().__init__(urls, broker_user="u", agency="syn-council")
        self.given, self._outcome, self.closed = list(urls), outcome, False

    async def open(self) -> Self:
        if isinstance(self._outcome, TransportError):
            raise self._outcome
        return self

    @property
    def answered(self) -> int:
        return self._outcome if isinstance(self._outcome, int) else 0

    async def aclose(self) -> None:
        self.closed = True


class Harness:
    """A session over scripted attempts; the body is lost ``losses`` times, then returns."""

    def __init__(
        self, script: Script, *, losses: int = 0, stop_on_refusal: int | None = None
    ) -> None:
        self.script, self.made, self.slept = list(script), list[Scripted](), list[float]()
        self.losses, self.refusals, self._stop_on = losses, 0, stop_on_refusal
        self.session = BrokerSession(
            URLS, self.make, backoff=BACKOFF, draw=lambda: 0.5, sleep=self.sleep
        )

    def make(self, urls: Sequence[str]) -> AmqpTransport:
        self.made.append(Scripted(urls, self.script.pop(0)))
        return self.made[-1]

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def body(self, _transport: AmqpTransport) -> None:
        if self.losses:
            self.losses -= 1
            raise ConnectionLost("the connection was lost (synthetic)")

    async def refused(self) -> bool:
        self.refusals += 1
        return self.refusals == self._stop_on

    async def run(self) -> None:
        await self.session.run(self.body, self.refused)


def down() -> TransportError:
    return TransportError("cannot connect to any broker (synthetic)")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "agent.broker_session"]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent.broker_session")


class TestAttempts:
    async def test_each_failed_attempt_is_one_line_naming_it_and_the_next_wait(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Three failures then success: three warnings and one info line, nothing else."""
        harness = Harness([down(), down(), down(), 0])
        await harness.run()
        assert lines(caplog) == [
            "broker connection attempt 1 failed (cannot connect to any broker (synthetic)); "
            "attempt 2 in 0.8 s",
            "broker connection attempt 2 failed (cannot connect to any broker (synthetic)); "
            "attempt 3 in 1.5 s",
            "broker connection attempt 3 failed (cannot connect to any broker (synthetic)); "
            "attempt 4 in 3.0 s",
            "broker connection up at attempt 4",
        ]

    async def test_the_waits_double_to_the_cap_and_are_the_ones_announced(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Each wait is the delay its line announced; 1 s doubling, capped at 8 s (less jitter)."""
        harness = Harness([*(down() for _ in range(7)), 0])
        await harness.run()
        assert harness.slept == [0.75, 1.5, 3.0, 6.0, 6.0, 6.0, 6.0]
        announced = [r.args[-1] for r in caplog.records if r.levelno == logging.WARNING]  # type: ignore[index]
        assert announced == harness.slept

    async def test_a_lost_session_is_one_line_and_the_count_starts_again(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Lost after being up: one 'lost' line announcing attempt 1; the waits start over."""
        harness = Harness([down(), down(), 0, down(), 0], losses=1)
        await harness.run()
        assert lines(caplog)[3:] == [
            "broker connection lost (the connection was lost (synthetic)); attempt 1 in 0.8 s",
            "broker connection attempt 1 failed (cannot connect to any broker (synthetic)); "
            "attempt 2 in 1.5 s",
            "broker connection up at attempt 2",
        ]
        assert harness.slept == [0.75, 1.5, 0.75, 1.5]

    async def test_every_transport_opened_is_closed(self) -> None:
        """A session that was up and lost closes its transport before the next attempt."""
        harness = Harness([0, 0], losses=1)
        await harness.run()
        assert [t.closed for t in harness.made] == [True, True]


class TestFailover:
    async def test_the_url_that_answered_is_tried_first_next_time(self) -> None:
        """The third URL answered: after a loss the next transport starts from it."""
        harness = Harness([2, 0], losses=1)
        await harness.run()
        assert harness.made[0].given == URLS
        assert harness.made[1].given == [URLS[2], URLS[0], URLS[1]]


class TestRefusal:
    async def test_refused_credentials_ask_whether_to_stop_and_stop_silently(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Each refusal asks; refused attempts are one line each until the answer is stop."""
        refused = AccessRefused("the broker refused our credentials (ACCESS_REFUSED) (synthetic)")
        harness = Harness([refused, refused, refused], stop_on_refusal=3)
        await harness.run()
        assert harness.refusals == 3
        assert len(lines(caplog)) == 2
        assert all("ACCESS_REFUSED" in line for line in lines(caplog))
        assert harness.slept == [0.75, 1.5]

    async def test_an_unreachable_broker_does_not_ask(self) -> None:
        """Only refused credentials can mean revocation: other failures just retry."""
        harness = Harness([down(), 0])
        await harness.run()
        assert harness.refusals == 0
