"""The agent's broker session: one AMQP connection at a time, reopened with backoff when it ends.

Rules:
1. This loop is the one place that reconnects (``agent.transport`` rule 6). Each attempt opens a
   new :class:`~agent.transport.AmqpTransport` (a connection and its publishing channel); the
   caller's ``body`` then declares passively and consumes on it, explicitly, until the
   transport is lost; then it is closed. aio-pika's robust connection is not used: its loop has
   no public hook for a failed attempt, and with aiormq it logged each attempt three times from
   three loggers (3,239 lines in 27 minutes from one revoked agent).
2. The waits back off exponentially with jitter up to a cap (:class:`JitteredBackoff`: 1 s
   doubling to 15 s, each drawn from its upper half; a cap of 60 s kept agents away for up to a
   minute after a restarted broker was back): the n-th wait since the session was last
   up (a loss counts as the first) is ``backoff.delay(n)``. The count starts again once a
   session comes up.
3. Exactly ONE line per attempt, from this module's logger, with the attempt's number and the
   delay before the next one: a WARNING when an attempt fails ("broker connection attempt 3
   failed (...); attempt 4 in 3.6 s"), an INFO when it succeeds ("broker connection up at
   attempt 4"); and a WARNING when a session that was up is lost ("broker connection lost
   (...); attempt 1 in 0.8 s"). The libraries' own records are DEBUG (``agent.logs`` rule 4).
4. Refused credentials (:class:`AccessRefused`: a wrong password, or the agency revoked and its
   broker user removed) are handed to ``refused`` first: when it answers True (the manifest
   lists us as revoked) the loop returns at once, without its line (the caller says why).
5. The URL that answered last is tried first at the next attempt, so a dead first node of a
   cluster is not waited on before each failover.
6. Randomness and sleeping come in as seams (``draw``, ``sleep``), for tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from agent.errors import TransportError
from agent.transport import AccessRefused, AmqpTransport, JitteredBackoff

__all__ = ["RECONNECT_BACKOFF", "Body", "BrokerSession", "OpenTransport", "Refused"]

log = logging.getLogger(__name__)

#: rule 2: 1 s doubling to 15 s, each delay drawn from its upper half
RECONNECT_BACKOFF = JitteredBackoff(initial=1.0, maximum=15.0)

#: builds (does not open) a transport over the URLs, in the order to try them
OpenTransport = Callable[[Sequence[str]], AmqpTransport]
#: runs while the session is up; raises TransportError (ConnectionLost) once it is lost
Body = Callable[[AmqpTransport], Awaitable[None]]
#: the broker refused our credentials: True to stop for good (rule 4)
Refused = Callable[[], Awaitable[bool]]


class BrokerSession:
    """``await BrokerSession(urls, make).run(body, refused)``: until cancelled, ``body``
    returns, or ``refused`` says stop."""

    def __init__(
        self,
        urls: Sequence[str],
        make: OpenTransport,
        *,
        backoff: JitteredBackoff = RECONNECT_BACKOFF,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._urls = list(urls)
        self._make, self._backoff, self._draw, self._sleep = make, backoff, draw, sleep

    async def run(self, body: Body, refused: Refused) -> None:
        attempt, waits = 1, 0
        while True:
            transport = self._make(self._urls)
            try:
                await transport.open()
            except TransportError as exc:
                if isinstance(exc, AccessRefused) and await refused():
                    return
                waits += 1
                await self._wait(waits, "broker connection attempt %d failed (%s); attempt %d "
                                 "in %.1f s", attempt, exc.message, attempt + 1)  # fmt: skip
                attempt += 1
                continue
            try:
                reason = await self._up(transport, attempt, body)
            finally:
                await transport.aclose()
            if reason is None:
                return
            attempt, waits = 1, 1
            await self._wait(waits, "broker connection lost (%s); attempt %d in %.1f s",
                             reason, attempt)  # fmt: skip

    async def _up(self, transport: AmqpTransport, attempt: int, body: Body) -> str | None:
        """Run ``body`` on an open transport: None when it returned, else why it was lost."""
        log.info("broker connection up at attempt %d", attempt)
        self._urls = self._urls[transport.answered :] + self._urls[: transport.answered]
        try:
            await body(transport)
        except TransportError as exc:
            return exc.message
        return None

    async def _wait(self, waits: int, message: str, *args: object) -> None:
        """Rules 2, 3: the one line, with the delay it announces, then that delay."""
        delay = self._backoff.delay(waits, self._draw())
        log.warning(message, *args, delay)
        await self._sleep(delay)
