"""The agent's AMQP transport: a thin aio-pika adapter that moves bytes, nothing else.

Rules:

1. It never declares anything: agents have no ``configure`` permission. The exchange is taken
   with ``get_exchange(ensure=False)``; the inbox queue with a *passive* declare (RabbitMQ allows
   that with an empty configure permission, and the robust channel then re-consumes after a
   reconnection).
2. ``publish`` returns only once the broker confirmed the message (publisher confirms). A nack,
   a return (``mandatory=True``: an unroutable recipient is an error), a timeout or a lost
   connection raise ``TransportError``: nothing is silently dropped. A lost confirm does not
   mean the broker refused the message, so a retry may duplicate it; receivers dedupe.
3. Messages are PERSISTENT, ``user_id`` is our broker user (RabbitMQ checks it), ``type`` is
   ``envelope`` or ``receipt``, ``message_id`` is the envelope id.
4. ``consume`` runs until cancelled (retrying its start while the broker is down or our queue
   is not provisioned yet) and uses MANUAL acks with a bounded prefetch. The handler's
   :class:`Outcome` decides: ACK (only after the caller's durable commit), REJECT
   (dead-lettered by the queue's policy), REQUEUE (transient failure). A handler that raises
   is treated as REQUEUE: never an ack. The quorum queue's delivery limit dead-letters a
   message that keeps failing.
5. aio-pika / aiormq exceptions never escape this module: they become ``TransportError``, whose
   message names no URL or password.
6. The connection is robust (``connect_robust``); the URLs are tried in turn at start, and while
   the connection is down the next URL is used for the next reconnection attempt (failover
   between the nodes of a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions
from pydantic import BaseModel, ConfigDict
from yarl import URL

from agent.errors import TransportError
from federation.topology import EXCHANGE, BodyKind, inbox_queue, is_agency_id

__all__ = [
    "AccessRefused",
    "AmqpTransport",
    "Delivery",
    "Handler",
    "JitteredBackoff",
    "Outcome",
    "Unroutable",
]

log = logging.getLogger(__name__)

_MAX_CONSUME_RETRY = 30.0
_AMQP_ERRORS: tuple[type[BaseException], ...] = (
    *aio_pika.exceptions.CONNECTION_EXCEPTIONS,
    asyncio.TimeoutError,
)
_REFUSED = (aiormq.exceptions.ProbableAuthenticationError, aiormq.exceptions.AuthenticationError)
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *_AMQP_ERRORS,
    ValueError,
)  # ValueError: a URL aiormq cannot use


@dataclass(frozen=True)
class JitteredBackoff:
    """Delay before retry ``n`` (1-based): ``initial * 2**(n-1)`` capped at ``maximum``, less a
    random part of up to ``jitter`` of it, so delays never shrink before the cap."""

    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 0.5

    def delay(self, attempt: int, draw: float) -> float:
        """``draw`` in [0, 1) is the random seam (``random.random`` in production)."""
        ceiling = min(self.maximum, self.initial * 2.0 ** min(max(attempt, 1) - 1, 64))
        return ceiling * (1.0 - self.jitter * draw)


class AccessRefused(TransportError):
    """The broker refused our credentials (ACCESS_REFUSED): a wrong password, or a broker user
    removed because the agency was revoked."""


class Unroutable(TransportError):
    """The broker has no queue for that recipient (not provisioned, or removed).

    Retrying may succeed once the operator provisions the recipient; the caller decides
    whether to back off until expiry or fail the message (``mark_failed``).
    """


class Outcome(StrEnum):
    """What the consumer does with a delivery once the handler returned."""

    ACK = "ack"  # durably handled (stored, or deliberately dropped as a duplicate)
    REJECT = "reject"  # poison: dead-letter it (the caller sends the rejection receipt)
    REQUEUE = "requeue"  # transient failure (e.g. StoreUnavailable): deliver again later


class Delivery(BaseModel):
    """One message taken from our inbox queue: its exact body and AMQP routing facts."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    body: bytes
    message_id: str | None
    kind: str | None
    user_id: str | None  # the sender's broker user, validated by RabbitMQ
    redelivered: bool
    delivery_count: int  # earlier failed deliveries (quorum queue x-delivery-count), 0 at first


Handler = Callable[[Delivery], Awaitable[Outcome]]


class AmqpTransport:
    """``async with AmqpTransport(urls, broker_user=..., agency=...) as transport: ...``"""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        broker_user: str,
        agency: str,
        prefetch: int = 32,
        confirm_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
        drain_timeout: float = 30.0,
    ) -> None:
        if not urls:
            raise TransportError("no broker URL configured")
        if not is_agency_id(agency):
            raise TransportError(f"not a valid agency id: {agency!r}")
        if prefetch < 1:
            raise TransportError("prefetch must be at least 1")
        self._urls = [_amqp_url(u, n) for n, u in enumerate(urls, start=1)]
        self._broker_user = broker_user
        self._agency = agency
        self._prefetch = prefetch
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._drain_timeout = drain_timeout
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractRobustChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._failover: asyncio.Task[None] | None = None
        self._consuming = False

    @property
    def connection_name(self) -> str:
        """The name this agent's connection shows in the RabbitMQ management UI."""
        return f"isa-agent {self._agency}"

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (for ``/healthz``)."""
        conn = self._connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    # -- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._connection = await self._connect_first_reachable()
        try:
            with _translated("open a publishing channel"):
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                self._exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        except BaseException:
            await self.aclose()
            raise
        self._channel = channel
        self._failover = asyncio.create_task(self._failover_loop(), name="amqp-failover")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (idempotent); in-flight publishes fail with TransportError."""
        failover, self._failover = self._failover, None
        if failover is not None:
            failover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await failover
        conn, self._connection = self._connection, None
        self._channel = self._exchange = None
        if conn is not None:
            await self._bounded(conn.close())

    async def _connect_first_reachable(self) -> aio_pika.abc.AbstractRobustConnection:
        failures: list[str] = []
        refused = bool(self._urls)
        for index, url in enumerate(self._urls):
            try:
                conn = await self._connect(url)
            except _CONNECT_ERRORS as exc:
                failures.append(f"{_redacted(url)}: {type(exc).__name__}")
                refused = refused and isinstance(exc, _REFUSED)
                continue
            self._urls = self._urls[index:] + self._urls[:index]  # the live one first
            return conn
        error = AccessRefused if refused else TransportError
        raise error("cannot connect to any broker (" + "; ".join(failures) + ")")

    async def _connect(self, url: URL) -> aio_pika.abc.AbstractRobustConnection:
        """One robust connection, or an error within ``connect_timeout`` (never a hang, and
        never a reconnection loop left running behind a failed attempt)."""
        conn = aio_pika.RobustConnection(
            url,
            reconnect_interval=self._reconnect_interval,
            client_properties={"connection_name": self.connection_name},
        )
        try:
            async with asyncio.timeout(self._connect_timeout):
                await conn.connect(timeout=self._connect_timeout)
        except BaseException:
            await self._bounded(conn.close())
            raise
        return conn

    async def _failover_loop(self) -> None:
        """While disconnected, point the next reconnection attempt at the next URL."""
        while True:
            await asyncio.sleep(self._reconnect_interval)
            conn = self._connection
            if not isinstance(conn, aio_pika.RobustConnection) or len(self._urls) < 2:
                continue
            if conn.connected.is_set():
                continue
            self._urls = self._urls[1:] + self._urls[:1]
            conn.url = self._urls[0]  # each reconnection attempt reads it afresh
            log.warning("broker unreachable; next attempt goes to %s", _redacted(conn.url))

    # -- publishing ------------------------------------------------------------------------

    async def publish(
        self, recipient: str, body: bytes, *, message_id: str, kind: BodyKind
    ) -> None:
        """Publish to ``isa.messages`` with routing key ``recipient``; returns once confirmed."""
        channel, exchange = self._channel, self._exchange
        if channel is None or exchange is None:
            raise TransportError("the transport is not open")
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=kind,
            user_id=self._broker_user,
            content_type="application/octet-stream",
        )
        with _translated(f"publish {kind} {message_id} to {recipient}"):
            async with asyncio.timeout(self._confirm_timeout):
                await channel.ready()
                await exchange.publish(message, routing_key=recipient, mandatory=True)

    # -- consuming -------------------------------------------------------------------------

    @property
    def consuming(self) -> bool:
        """True while a consumer is registered on our inbox queue (for ``/healthz``)."""
        return self._consuming and self.connected

    async def consume(self, handler: Handler) -> None:
        """Consume our inbox until cancelled.

        Starting is retried with backoff (the broker may be down, or our queue not provisioned
        yet), logging each failure. On cancellation it stops taking deliveries, lets in-flight
        handlers finish (their outcomes are still applied) and re-raises.
        """
        connection = self._connection
        if connection is None:
            raise TransportError("the transport is not open")
        in_flight = _InFlight()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await in_flight.run(_handle(message, handler))

        channel, queue, tag = await self._start_consumer(connection, on_message)
        self._consuming = True
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            self._consuming = False
            await self._bounded(queue.cancel(tag))
            await self._bounded(in_flight.drain(), self._drain_timeout)
            await self._bounded(channel.close())

    async def _start_consumer(
        self,
        connection: aio_pika.abc.AbstractRobustConnection,
        on_message: Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]],
    ) -> tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractQueue, str]:
        delay = self._reconnect_interval
        while True:
            channel: aio_pika.abc.AbstractChannel | None = None
            try:
                with _translated(f"consume {inbox_queue(self._agency)}"):
                    async with asyncio.timeout(self._connect_timeout):
                        channel = await connection.channel()
                        await channel.set_qos(prefetch_count=self._prefetch)
                        queue = await channel.declare_queue(inbox_queue(self._agency), passive=True)
                        tag = await queue.consume(on_message, no_ack=False)
                return channel, queue, tag
            except TransportError as exc:
                log.warning("%s; retrying in %.1f s", exc.message, delay)
                if channel is not None:
                    await self._bounded(channel.close())
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_CONSUME_RETRY)

    async def _bounded(self, step: Awaitable[object], seconds: float | None = None) -> None:
        """A shutdown step that may not hang (the broker may be gone) nor raise."""
        with contextlib.suppress(*_AMQP_ERRORS):
            async with asyncio.timeout(seconds or self._confirm_timeout):
                await step


class _InFlight:
    """Counts running handler calls so that shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, work: Awaitable[None]) -> None:
        self._count += 1
        self._idle.clear()
        try:
            await work
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()


async def _handle(message: aio_pika.abc.AbstractIncomingMessage, handler: Handler) -> None:
    delivery = _delivery(message)
    try:
        outcome = await handler(delivery)
    except asyncio.CancelledError:
        raise  # not settled: the broker redelivers it when the channel closes
    except Exception:
        log.exception("handler failed for message %s; requeueing", delivery.message_id)
        outcome = Outcome.REQUEUE
    try:
        if outcome is Outcome.ACK:
            await message.ack()
        elif outcome is Outcome.REJECT:
            await message.reject(requeue=False)
        else:
            await message.nack(requeue=True)
    except _AMQP_ERRORS as exc:  # channel gone: the broker will redeliver; receivers dedupe
        log.warning("could not %s message %s: %s", outcome.value, delivery.message_id, exc)


def _delivery(message: aio_pika.abc.AbstractIncomingMessage) -> Delivery:
    headers: dict[str, Any] = dict(message.headers or {})
    count = headers.get("x-delivery-count", 0)
    return Delivery(
        body=bytes(message.body),
        message_id=message.message_id,
        kind=message.type,
        user_id=message.user_id,
        redelivered=bool(message.redelivered),
        delivery_count=count if isinstance(count, int) else 0,
    )


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn aio-pika / aiormq / socket / timeout errors into ``TransportError`` (rule 5)."""
    try:
        yield
    except TransportError:
        raise
    except aiormq.exceptions.PublishError as exc:
        raise Unroutable(f"cannot {action}: the broker could not route it") from exc
    except aiormq.exceptions.DeliveryError as exc:
        raise TransportError(f"cannot {action}: the broker refused it") from exc
    except TimeoutError as exc:
        raise TransportError(f"cannot {action}: no confirmation in time") from exc
    except _AMQP_ERRORS as exc:
        raise TransportError(f"cannot {action}: {type(exc).__name__}") from exc


def _amqp_url(text: str, position: int) -> URL:
    url = URL(text)
    if url.scheme not in ("amqp", "amqps") or not url.host:
        raise TransportError(f"broker URL #{position} is not an amqp:// or amqps:// URL")
    return url


def _redacted(url: URL) -> str:
    return str(url.with_password("******")) if url.password else str(url)
