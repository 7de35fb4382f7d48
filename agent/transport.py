"""The agent's AMQP transport: a thin aio-pika adapter that moves bytes, nothing else.

Rules:

1. It never declares anything: agents have no ``configure`` permission. The exchange is taken
   with ``get_exchange(ensure=False)``; the inbox queue with a *passive* declare (RabbitMQ allows
   that with an empty configure permission).
2. ``publish`` returns only once the broker confirmed the message (publisher confirms). A nack,
   a return (``mandatory=True``: an unroutable recipient is an error), a timeout or a lost
   connection raise ``TransportError``: nothing is silently dropped. A lost confirm does not
   mean the broker refused the message, so a retry may duplicate it; receivers dedupe.
3. Messages are PERSISTENT, ``user_id`` is our broker user (RabbitMQ checks it), ``type`` is
   ``envelope`` or ``receipt``, ``message_id`` is the envelope id.
4. ``consume`` runs until cancelled (retrying its start while our queue is not provisioned yet)
   and uses MANUAL acks with a bounded prefetch. The handler's :class:`Outcome` decides: ACK
   (only after the caller's durable commit), REJECT (dead-lettered by the queue's policy),
   REQUEUE (transient failure). A handler that raises is treated as REQUEUE: never an ack. The
   quorum queue's delivery limit dead-letters a message that keeps failing.
5. aio-pika / aiormq exceptions never escape this module: they become ``TransportError``, whose
   message names no URL or password. A broker refusing our credentials at every URL is
   :class:`AccessRefused`.
6. One transport is ONE connection (aio-pika's plain connection, not its robust one): the URLs
   are tried in turn when it opens (:attr:`AmqpTransport.answered` says which one answered).
   When the connection, our consuming channel or our consumer ends (the broker went away,
   closed the connection, or cancelled the consumer), ``consume`` raises
   :class:`ConnectionLost` and the transport is spent: reconnecting is the caller's one loop
   (``agent.broker_session``), which opens a new transport, declares passively and consumes
   again, explicitly. Only the publishing channel is reopened in place, at the next publish,
   after a refused publish closed it.
7. The libraries' own connection records (aiormq's "error when creating transport" and
   "Unexpected connection close", one per attempt or loss) are demoted to DEBUG
   (``agent.logs.quiet_amqp_logs``, rule 4): the caller's loop logs one line per attempt.
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
from agent.logs import quiet_amqp_logs
from federation.topology import EXCHANGE, BodyKind, inbox_queue, is_agency_id

__all__ = [
    "AccessRefused",
    "AmqpTransport",
    "ConnectionLost",
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


class ConnectionLost(TransportError):
    """The connection, our consuming channel or our consumer ended: this transport is spent;
    open a new one (rule 6). The message says why, naming no URL or password."""


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
    """``async with AmqpTransport(urls, broker_user=..., agency=...) as transport: ...``

    One connection (rule 6): once :meth:`consume` raised :class:`ConnectionLost`, open a new one.
    """

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
        """``reconnect_interval``: the first delay between retries of the consumer's start
        (doubling to 30 s) while our queue is not provisioned."""
        if not urls:
            raise TransportError("no broker URL configured")
        if not is_agency_id(agency):
            raise TransportError(f"not a valid agency id: {agency!r}")
        if prefetch < 1:
            raise TransportError("prefetch must be at least 1")
        quiet_amqp_logs()
        self._urls = [_amqp_url(u, n) for n, u in enumerate(urls, start=1)]
        self._broker_user = broker_user
        self._agency = agency
        self._prefetch = prefetch
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._drain_timeout = drain_timeout
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._lost: _Ending | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._reopening = asyncio.Lock()
        self._answered = 0
        self._consuming = False

    @property
    def connection_name(self) -> str:
        """The name this agent's connection shows in the RabbitMQ management UI."""
        return f"isa-agent {self._agency}"

    @property
    def answered(self) -> int:
        """The position, among the URLs given, of the one this connection was made to (0
        before opening): a caller's next transport can try it first (rule 6)."""
        return self._answered

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (for ``/healthz``)."""
        conn, lost = self._connection, self._lost
        return (
            conn is not None
            and lost is not None
            and not lost.ended
            and not conn.is_closed
            and conn.connected.is_set()
        )

    # -- lifetime --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return await self.open()

    async def open(self) -> Self:
        """Connect to the first URL that answers and open the publishing channel; on failure
        nothing is left open. Close with :meth:`aclose` (or use ``async with``)."""
        self._connection = conn = await self._connect_first_reachable()
        self._lost = lost = _Ending()
        conn.close_callbacks.add(lambda _conn, exc: lost.end(_closed_by_broker("connection", exc)))
        try:
            await self._open_publishing_channel(conn)
        except BaseException:
            await self.aclose()
            raise
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
        conn, self._connection = self._connection, None
        self._channel = self._exchange = None
        if self._lost is not None:
            self._lost.end("the transport was closed")
        if conn is not None:
            await self._bounded(conn.close())

    async def _connect_first_reachable(self) -> aio_pika.abc.AbstractConnection:
        failures: list[str] = []
        refused = bool(self._urls)
        for index, url in enumerate(self._urls):
            try:
                conn = await self._connect(url)
            except _CONNECT_ERRORS as exc:
                failures.append(f"{_redacted(url)}: {type(exc).__name__}")
                refused = refused and isinstance(exc, _REFUSED)
                continue
            self._answered = index
            return conn
        if refused:
            raise AccessRefused(
                "the broker refused our credentials (ACCESS_REFUSED) at every URL ("
                + "; ".join(failures) + ")"
            )  # fmt: skip
        raise TransportError("cannot connect to any broker (" + "; ".join(failures) + ")")

    async def _connect(self, url: URL) -> aio_pika.abc.AbstractConnection:
        """One connection, or an error within ``connect_timeout`` (never a hang)."""
        conn = aio_pika.Connection(url, client_properties={"connection_name": self.connection_name})
        try:
            async with asyncio.timeout(self._connect_timeout):
                await conn.connect(timeout=self._connect_timeout)
        except BaseException:
            await self._bounded(conn.close())
            raise
        return conn

    async def _open_publishing_channel(
        self, conn: aio_pika.abc.AbstractConnection
    ) -> aio_pika.abc.AbstractExchange:
        with _translated("open a publishing channel"):
            async with asyncio.timeout(self._connect_timeout):
                channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        self._channel, self._exchange = channel, exchange
        return exchange

    async def _publishing(self) -> aio_pika.abc.AbstractExchange:
        """The exchange on an open publishing channel: reopened once a refused publish closed
        it, while the connection lives (rule 6)."""
        conn, lost = self._connection, self._lost
        if conn is None or lost is None:
            raise TransportError("the transport is not open")
        if lost.ended:
            raise ConnectionLost(lost.reason)
        async with self._reopening:
            channel, exchange = self._channel, self._exchange
            if channel is None or channel.is_closed or exchange is None:
                exchange = await self._open_publishing_channel(conn)
        return exchange

    # -- publishing ------------------------------------------------------------------------

    async def publish(
        self, recipient: str, body: bytes, *, message_id: str, kind: BodyKind
    ) -> None:
        """Publish to ``isa.messages`` with routing key ``recipient``; returns once confirmed."""
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
                exchange = await self._publishing()
                await exchange.publish(message, routing_key=recipient, mandatory=True)

    # -- consuming -------------------------------------------------------------------------

    @property
    def consuming(self) -> bool:
        """True while a consumer is registered on our inbox queue (for ``/healthz``)."""
        return self._consuming and self.connected

    async def consume(self, handler: Handler) -> None:
        """Consume our inbox until cancelled, or until the connection or the consumer ends:
        then :class:`ConnectionLost` (rule 6).

        Starting is retried with backoff while our queue is not provisioned yet, logging each
        failure. On the way out it stops taking deliveries, lets in-flight handlers finish
        (their outcomes are still applied where the channel lives) and re-raises.
        """
        connection, lost = self._connection, self._lost
        if connection is None or lost is None:
            raise TransportError("the transport is not open")
        in_flight = _InFlight()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await in_flight.run(_handle(message, handler))

        consumer = await self._start_consumer(connection, lost, on_message)
        self._consuming = True
        try:
            raise ConnectionLost(await _first_ending(lost, consumer.ended))
        finally:
            self._consuming = False
            await consumer.stop(self._bounded, in_flight, self._drain_timeout)

    async def _start_consumer(
        self,
        connection: aio_pika.abc.AbstractConnection,
        lost: _Ending,
        on_message: Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]],
    ) -> _Consumer:
        delay = self._reconnect_interval
        while True:
            if lost.ended:
                raise ConnectionLost(lost.reason)
            channel: aio_pika.abc.AbstractChannel | None = None
            try:
                with _translated(f"consume {inbox_queue(self._agency)}"):
                    async with asyncio.timeout(self._connect_timeout):
                        channel = await connection.channel()
                        await channel.set_qos(prefetch_count=self._prefetch)
                        queue = await channel.declare_queue(inbox_queue(self._agency), passive=True)
                        return await _Consumer.start(channel, queue, on_message)
            except TransportError as exc:
                if channel is not None:
                    await self._bounded(channel.close())
                if lost.ended:  # the session's line says so: not one of ours as well
                    raise ConnectionLost(lost.reason) from exc
                log.warning("%s; retrying in %.1f s", exc.message, delay)
            if await lost.within(delay):
                raise ConnectionLost(lost.reason)
            delay = min(delay * 2, _MAX_CONSUME_RETRY)

    async def _bounded(self, step: Awaitable[object], seconds: float | None = None) -> None:
        """A shutdown step that may not hang (the broker may be gone) nor raise."""
        with contextlib.suppress(*_AMQP_ERRORS):
            async with asyncio.timeout(seconds or self._confirm_timeout):
                await step


class _Ending:
    """The first reason something ended, set from the libraries' callbacks (rule 6)."""

    def __init__(self) -> None:
        self._future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def end(self, reason: str) -> None:
        if not self._future.done():
            self._future.set_result(reason)

    @property
    def ended(self) -> bool:
        return self._future.done()

    @property
    def reason(self) -> str:
        return self._future.result() if self._future.done() else "not ended"

    async def wait(self) -> str:
        return await asyncio.shield(self._future)

    async def within(self, seconds: float) -> bool:
        """Wait at most ``seconds`` for the end; True if it came."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wait()
        return self.ended


async def _first_ending(*endings: _Ending) -> str:
    """The reason of whichever ending comes first (the waiters are cancelled either way)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in endings]
    try:
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for waiter in waiters:
            waiter.cancel()


class _Consumer:
    """Our consumer on its own channel; :attr:`ended` once the broker closed that channel or
    cancelled the consumer (rule 6)."""

    def __init__(
        self,
        channel: aio_pika.abc.AbstractChannel,
        queue: aio_pika.abc.AbstractQueue,
        underlay: aiormq.abc.AbstractChannel,
    ) -> None:
        self.channel, self.queue, self._underlay = channel, queue, underlay
        self.ended = _Ending()
        self.tag = ""

    @classmethod
    async def start(
        cls,
        channel: aio_pika.abc.AbstractChannel,
        queue: aio_pika.abc.AbstractQueue,
        on_message: Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]],
    ) -> _Consumer:
        consumer = cls(channel, queue, await channel.get_underlay_channel())
        channel.close_callbacks.add(consumer._channel_closed)
        consumer._underlay.on_consumer_cancel_callbacks.add(consumer._cancelled)
        consumer.tag = await queue.consume(on_message, no_ack=False)
        return consumer

    def _channel_closed(self, _channel: object, exc: BaseException | None) -> None:
        self.ended.end(_closed_by_broker("consuming channel", exc))

    def _cancelled(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self.tag:
            self.ended.end("the broker cancelled our consumer (queue deleted or moved)")

    async def stop(
        self,
        bounded: Callable[[Awaitable[object], float | None], Awaitable[None]],
        in_flight: _InFlight,
        drain_timeout: float,
    ) -> None:
        """Stop taking deliveries, let in-flight handlers finish, close the channel: at once
        where the broker already closed it."""
        self.ended.end("stopped")
        with contextlib.suppress(RuntimeError, KeyError):  # a closed channel's frozen callbacks
            self.channel.close_callbacks.discard(self._channel_closed)
        self._underlay.on_consumer_cancel_callbacks.discard(self._cancelled)
        if not self.channel.is_closed:
            await bounded(self.queue.cancel(self.tag), None)
        await bounded(in_flight.drain(), drain_timeout)
        if not self.channel.is_closed:
            await bounded(self.channel.close(), None)


def _closed_by_broker(what: str, exc: BaseException | None) -> str:
    """Why the broker side ended ``what``, naming no URL or password (rule 5)."""
    if exc is None or isinstance(exc, asyncio.CancelledError):
        return f"the {what} was closed"
    detail = str(exc).strip() or type(exc).__name__
    return f"the {what} was lost ({type(exc).__name__}: {detail})"[:300]


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
