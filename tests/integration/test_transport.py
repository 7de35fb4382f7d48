"""The AMQP transport against a real RabbitMQ: confirms, manual acks, dead-letters; and the
broker session that reconnects it (``agent.broker_session``): one log line per attempt.

Each test gets a fresh vhost with the production topology (declared here with the admin
connection, as provisioning would) and per-agency broker users with the production permissions:
configure nothing, write only the exchange, read only their own queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
import pytest
from yarl import URL

from agent.broker_session import BrokerSession
from agent.errors import TransportError
from agent.transport import (
    AccessRefused,
    AmqpTransport,
    ConnectionLost,
    Delivery,
    JitteredBackoff,
    Outcome,
    Unroutable,
)
from federation.topology import (
    DEAD_LETTER_EXCHANGE,
    DEFAULT_DELIVERY_LIMIT,
    EXCHANGE,
    dead_letter_queue,
    inbox_queue,
)
from tests.support.rabbitmq import RabbitVhost

pytestmark = pytest.mark.rabbitmq

POLICE, COUNCIL = "syn-police", "syn-council"
PASSWORD = "synthetic-test-password"
#: the sessions' waits in these tests, drawn with no jitter: 0.05, 0.1, 0.2, 0.4, 0.4, ... s
FAST = JitteredBackoff(initial=0.05, maximum=0.4)


@dataclass(frozen=True)
class Federation:
    """A provisioned test vhost: the agencies' broker users and how to reach the broker."""

    vhost: RabbitVhost
    users: dict[str, str]

    def url(self, agency: str) -> str:
        return self.vhost.server.amqp_url_for(self.vhost.name, self.users[agency], PASSWORD)

    def transport(self, agency: str, **kwargs: object) -> AmqpTransport:
        return AmqpTransport(
            [self.url(agency)],
            broker_user=self.users[agency],
            agency=agency,
            reconnect_interval=0.2,
            **kwargs,  # type: ignore[arg-type]
        )

    def session(self, agency: str, urls: list[str] | None = None) -> BrokerSession:
        """``agency``'s broker session over ``urls`` (default: its own), with the FAST waits."""

        def make(urls: Sequence[str]) -> AmqpTransport:
            return AmqpTransport(
                urls, broker_user=self.users[agency], agency=agency, reconnect_interval=0.2,
                connect_timeout=2,
            )  # fmt: skip

        return BrokerSession(urls or [self.url(agency)], make, backoff=FAST, draw=lambda: 0.0)

    async def queue_depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (passive declare as admin: exact, no stats lag)."""
        async with await aio_pika.connect(self.vhost.amqp_url) as conn:
            channel = await conn.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count or 0


async def _declare_topology(vhost: RabbitVhost, agencies: list[str]) -> None:
    async with await aio_pika.connect(vhost.amqp_url) as conn:
        channel = await conn.channel()
        messages = await channel.declare_exchange(EXCHANGE, "direct", durable=True)
        dead = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        for agency in agencies:
            inbox = await channel.declare_queue(
                inbox_queue(agency),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-delivery-limit": DEFAULT_DELIVERY_LIMIT,
                },
            )
            await inbox.bind(messages, routing_key=agency)
            poison = await channel.declare_queue(
                dead_letter_queue(agency), durable=True, arguments={"x-queue-type": "quorum"}
            )
            await poison.bind(dead, routing_key=agency)


def _provision_users(vhost: RabbitVhost, agencies: list[str]) -> dict[str, str]:
    server, quoted = vhost.server, urllib.parse.quote(vhost.name, safe="")
    users = {agency: f"{vhost.name}-{agency}" for agency in agencies}
    for agency, user in users.items():
        server.api("PUT", f"users/{user}", {"password": PASSWORD, "tags": ""})
        server.api(
            "PUT",
            f"permissions/{quoted}/{user}",
            {
                "configure": "^$",
                "write": f"^{EXCHANGE.replace('.', '[.]')}$",
                "read": f"^{inbox_queue(agency).replace('.', '[.]')}$",
            },
        )
    return users


@pytest.fixture
async def federation(rabbit_vhost: RabbitVhost) -> AsyncIterator[Federation]:
    """The production topology and two agencies' restricted broker users."""
    agencies = [POLICE, COUNCIL]
    await _declare_topology(rabbit_vhost, agencies)
    users = _provision_users(rabbit_vhost, agencies)
    try:
        yield Federation(rabbit_vhost, users)
    finally:
        for user in users.values():
            rabbit_vhost.server.discard_user(user)  # a test may have removed it (revocation)


class Inbox:
    """A test handler: records deliveries and answers with a scripted outcome."""

    def __init__(self, decide: Callable[[Delivery], Awaitable[Outcome]] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.changed = asyncio.Condition()
        self._decide = decide

    async def __call__(self, delivery: Delivery) -> Outcome:
        self.deliveries.append(delivery)
        async with self.changed:
            self.changed.notify_all()
        return Outcome.ACK if self._decide is None else await self._decide(delivery)

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Delivery]:
        return await self.wait_until(lambda: len(self.deliveries) >= count, seconds)

    async def wait_until(self, ready: Callable[[], bool], seconds: float = 10.0) -> list[Delivery]:
        async with asyncio.timeout(seconds), self.changed:
            await self.changed.wait_for(ready)
        return self.deliveries


@contextlib.asynccontextmanager
async def consuming(transport: AmqpTransport, handler: Inbox) -> AsyncIterator[None]:
    task = asyncio.create_task(transport.consume(handler))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Running:
    """A broker session running in a task, as the agent runs it: each time it is up, its
    transport consumes into ``handler``; ``refused`` answers as the agent would (scripted)."""

    def __init__(self, handler: Inbox, stop_on_refusal: int | None = None) -> None:
        self.handler, self.ups, self.refusals = handler, list[AmqpTransport](), 0
        self._stop_on_refusal = stop_on_refusal
        self.task: asyncio.Task[None] | None = None

    @property
    def returned(self) -> bool:
        """The session's ``run`` returned by itself (not cancelled, no error)."""
        task = self.task
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    @property
    def transport(self) -> AmqpTransport:
        return self.ups[-1]

    async def body(self, transport: AmqpTransport) -> None:
        self.ups.append(transport)
        await transport.consume(self.handler)

    async def refused(self) -> bool:
        self.refusals += 1
        return self.refusals == self._stop_on_refusal

    async def publish(self, recipient: str, body: bytes, message_id: str) -> None:
        """What the outbox relay does: retry shortly until the session's transport confirms."""
        deadline = time.monotonic() + 20
        while True:
            try:
                await self.transport.publish(
                    recipient, body, message_id=message_id, kind="envelope"
                )
                return
            except (TransportError, IndexError):
                assert time.monotonic() < deadline, "never reconnected"
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def running(
    session: BrokerSession, handler: Inbox, stop_on_refusal: int | None = None
) -> AsyncIterator[Running]:
    """``session`` running until the block ends; the block starts once it is first up."""
    run = Running(handler, stop_on_refusal)
    run.task = task = asyncio.create_task(session.run(run.body, run.refused))
    try:
        await _until(lambda: (bool(run.ups) and run.transport.consuming) or task.done(), 10)
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (log records and sessions have no event to wait on)
            await asyncio.sleep(0.02)


async def send(federation: Federation, count: int = 1, prefix: str = "env") -> None:
    async with federation.transport(POLICE) as police:
        for i in range(count):
            await police.publish(
                COUNCIL, f"IRL1-synthetic-{i}".encode(), message_id=f"{prefix}-{i}", kind="envelope"
            )


class TestPublishAndConsume:
    async def test_a_confirmed_message_arrives_with_its_routing_facts(
        self, federation: Federation
    ) -> None:
        """Body, id, type and the broker-validated sender user arrive intact."""
        await send(federation)
        inbox = Inbox()
        async with federation.transport(COUNCIL) as council, consuming(council, inbox):
            [delivery] = await inbox.wait_for(1)
        assert delivery.body == b"IRL1-synthetic-0"
        assert (delivery.message_id, delivery.kind) == ("env-0", "envelope")
        assert delivery.user_id == federation.users[POLICE]
        assert (delivery.redelivered, delivery.delivery_count) == (False, 0)

    async def test_an_acked_message_leaves_the_queue(self, federation: Federation) -> None:
        """After ACK, nothing is left in the recipient's queue."""
        await send(federation, 3)
        inbox = Inbox()
        async with federation.transport(COUNCIL) as council, consuming(council, inbox):
            await inbox.wait_for(3)
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 0

    async def test_messages_are_persistent(self, federation: Federation) -> None:
        """Every published message carries delivery mode 2 (persistent)."""
        await send(federation)
        async with await aio_pika.connect(federation.vhost.amqp_url) as conn:
            queue = await (await conn.channel()).get_queue(inbox_queue(COUNCIL))
            message = await queue.get(timeout=5)
            await message.ack()
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


class TestConsumerOutcomes:
    async def test_a_rejected_message_ends_in_the_dead_letter_queue(
        self, federation: Federation
    ) -> None:
        """REJECT dead-letters the message: it waits in isa.dead.<agency> for the operator."""
        await send(federation)

        async def reject(_: Delivery) -> Outcome:
            return Outcome.REJECT

        inbox = Inbox(reject)
        async with federation.transport(COUNCIL) as council, consuming(council, inbox):
            await inbox.wait_for(1)
        async with await aio_pika.connect(federation.vhost.amqp_url) as conn:
            dead = await (await conn.channel()).get_queue(dead_letter_queue(COUNCIL))
            message = await _get_eventually(dead)
        assert (message.body, message.message_id) == (b"IRL1-synthetic-0", "env-0")
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 0

    async def test_a_handler_exception_does_not_lose_the_message(
        self, federation: Federation
    ) -> None:
        """A handler that raises never acks: the message is delivered again."""
        await send(federation)

        async def fail_once(delivery: Delivery) -> Outcome:
            if delivery.delivery_count == 0 and not delivery.redelivered:
                raise RuntimeError("synthetic handler failure")
            return Outcome.ACK

        inbox = Inbox(fail_once)
        async with federation.transport(COUNCIL) as council, consuming(council, inbox):
            first, second = await inbox.wait_for(2)
        assert first.message_id == second.message_id == "env-0"
        assert second.redelivered or second.delivery_count >= 1

    async def test_requeue_redelivers_the_message(self, federation: Federation) -> None:
        """REQUEUE (a transient failure) gives the message back for another try."""
        await send(federation)
        outcomes = [Outcome.REQUEUE, Outcome.ACK]

        async def scripted(_: Delivery) -> Outcome:
            return outcomes.pop(0)

        inbox = Inbox(scripted)
        async with federation.transport(COUNCIL) as council, consuming(council, inbox):
            deliveries = await inbox.wait_for(2)
        assert [d.message_id for d in deliveries] == ["env-0", "env-0"]
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 0

    async def test_prefetch_bounds_unacked_deliveries(self, federation: Federation) -> None:
        """With prefetch 3 and a stuck handler, exactly 3 deliveries are outstanding."""
        await send(federation, 10)
        release = asyncio.Event()

        async def stuck(_: Delivery) -> Outcome:
            await release.wait()
            return Outcome.ACK

        inbox = Inbox(stuck)
        council = federation.transport(COUNCIL, prefetch=3)
        async with council, consuming(council, inbox):
            await inbox.wait_for(3)
            await asyncio.sleep(0.5)
            outstanding = len(inbox.deliveries)
            release.set()
            await inbox.wait_for(10)
        assert outstanding == 3

    async def test_a_consumer_started_before_its_queue_exists_begins_once_provisioned(
        self, federation: Federation
    ) -> None:
        """An agent up before provisioning keeps retrying, then consumes (no crash, no declare)."""
        vhost, late = federation.vhost, "syn-health"
        users = _provision_users(vhost, [late])
        try:
            transport = AmqpTransport(
                [vhost.server.amqp_url_for(vhost.name, users[late], PASSWORD)],
                broker_user=users[late],
                agency=late,
                reconnect_interval=0.1,
            )
            inbox = Inbox()
            async with transport, consuming(transport, inbox):
                await asyncio.sleep(0.5)
                was_consuming = transport.consuming
                await _declare_topology(vhost, [late])
                async with federation.transport(POLICE) as police:
                    await police.publish(late, b"IRL1", message_id="e-1", kind="envelope")
                [delivery] = await inbox.wait_for(1)
                assert transport.consuming
        finally:
            vhost.server.api("DELETE", f"users/{users[late]}")
        assert (was_consuming, delivery.message_id) == (False, "e-1")

    async def test_cancelling_the_consumer_lets_in_flight_handlers_finish(
        self, federation: Federation
    ) -> None:
        """Shutdown drains: a handler running at cancellation still gets its ACK applied."""
        await send(federation)
        started, release = asyncio.Event(), asyncio.Event()

        async def slow(_: Delivery) -> Outcome:
            started.set()
            await release.wait()
            return Outcome.ACK

        async with federation.transport(COUNCIL) as council:
            task = asyncio.create_task(council.consume(Inbox(slow)))
            await asyncio.wait_for(started.wait(), 10)
            task.cancel()
            await asyncio.sleep(0.1)
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 0


async def _get_eventually(
    queue: aio_pika.abc.AbstractQueue, seconds: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = time.monotonic() + seconds
    while True:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing arrived in {queue.name}")
        await asyncio.sleep(0.1)


class TestPublishFailures:
    async def test_an_unroutable_recipient_is_a_transport_error(
        self, federation: Federation
    ) -> None:
        """mandatory=True: a recipient with no queue raises instead of vanishing."""
        async with federation.transport(POLICE) as police:
            with pytest.raises(Unroutable, match="could not route"):
                await police.publish("syn-nobody", b"IRL1", message_id="e-1", kind="envelope")

    async def test_publishing_as_another_user_is_refused(self, federation: Federation) -> None:
        """RabbitMQ checks user_id: a transport claiming another agency's user gets an error."""
        transport = AmqpTransport(
            [federation.url(POLICE)],
            broker_user=federation.users[COUNCIL],
            agency=POLICE,
            reconnect_interval=0.2,
        )
        async with transport:
            with pytest.raises(TransportError):
                await transport.publish(COUNCIL, b"IRL1", message_id="e-1", kind="envelope")
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 0

    async def test_the_channel_recovers_after_a_refused_publish(
        self, federation: Federation
    ) -> None:
        """After an unroutable publish, the next publish on the same transport succeeds."""
        async with federation.transport(POLICE) as police:
            with pytest.raises(TransportError):
                await police.publish("syn-nobody", b"IRL1", message_id="e-1", kind="envelope")
            await police.publish(COUNCIL, b"IRL1", message_id="e-2", kind="receipt")
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 1

    async def test_no_reachable_broker_is_a_transport_error_without_secrets(self) -> None:
        """Every URL failing gives one TransportError that does not show the password."""
        transport = AmqpTransport(
            ["amqp://syn-user:s3cret-synthetic@127.0.0.1:1/isa"],
            broker_user="syn-user",
            agency=POLICE,
            connect_timeout=2,
        )
        with pytest.raises(TransportError) as caught:
            await transport.__aenter__()
        assert "s3cret-synthetic" not in caught.value.message
        assert "127.0.0.1:1" in caught.value.message

    def test_a_url_that_is_not_amqp_is_refused_up_front(self) -> None:
        """A misconfigured URL fails at construction instead of retrying forever."""
        with pytest.raises(TransportError, match="URL #2"):
            AmqpTransport(
                ["amqp://127.0.0.1/", "http://127.0.0.1:15672/"], broker_user="u", agency=POLICE
            )

    async def test_a_wrong_password_is_a_transport_error_without_the_password(
        self, federation: Federation
    ) -> None:
        """Authentication failure is reported promptly and never echoes the password."""
        url = URL(federation.url(POLICE)).with_password("wrong-synthetic-password")
        transport = AmqpTransport(
            [str(url)], broker_user=federation.users[POLICE], agency=POLICE, connect_timeout=5
        )
        with pytest.raises(TransportError) as caught:
            await transport.__aenter__()
        assert "wrong-synthetic-password" not in caught.value.message
        assert "AuthenticationError" in caught.value.message


class TestConnection:
    async def test_the_first_reachable_url_is_used(self, federation: Federation) -> None:
        """A dead first broker URL is skipped in favour of the next."""
        transport = AmqpTransport(
            ["amqp://x:y@127.0.0.1:1/", federation.url(POLICE)],
            broker_user=federation.users[POLICE],
            agency=POLICE,
            connect_timeout=2,
        )
        async with transport:
            await transport.publish(COUNCIL, b"IRL1", message_id="e-1", kind="envelope")
            assert transport.connected
        assert await federation.queue_depth(inbox_queue(COUNCIL)) == 1

    async def test_a_forced_close_ends_the_consumer_with_connection_lost(
        self, federation: Federation
    ) -> None:
        """The operator closes the connection: consume raises ConnectionLost saying so, and the
        spent transport refuses to publish (the broker session opens a new one)."""
        async with federation.transport(COUNCIL) as council:
            task = asyncio.create_task(council.consume(Inbox()))
            await _until(lambda: council.consuming, seconds=10)
            _force_close(federation, [council.connection_name])
            with pytest.raises(ConnectionLost, match="CONNECTION_FORCED") as caught:
                await asyncio.wait_for(task, 10)
            with pytest.raises(TransportError):
                await council.publish(POLICE, b"IRL1", message_id="e-1", kind="envelope")
        assert not council.connected
        assert PASSWORD not in caught.value.message

    async def test_it_reconnects_after_a_forced_close_and_delivers_what_follows(
        self, federation: Federation
    ) -> None:
        """Both agents' connections killed by the operator: their sessions come back and
        deliver."""
        inbox = Inbox()
        async with (
            running(federation.session(POLICE), Inbox()) as police,
            running(federation.session(COUNCIL), inbox) as council,
        ):
            await police.publish(COUNCIL, b"before", "e-1")
            await inbox.wait_for(1)
            _force_close(
                federation, [police.transport.connection_name, council.transport.connection_name]
            )
            await police.publish(COUNCIL, b"after", "e-2")
            deliveries = await inbox.wait_until(
                lambda: any(d.body == b"after" for d in inbox.deliveries), seconds=20
            )
        # at-least-once: "before" may come twice if its ack raced the forced close
        assert {d.body for d in deliveries} == {b"before", b"after"}
        assert (len(police.ups), len(council.ups)) == (2, 2)

    async def test_it_fails_over_to_the_next_url_when_its_broker_goes_away(
        self, federation: Federation
    ) -> None:
        """With the first broker address gone for good, both sessions move to the second."""
        server = federation.vhost.server
        async with TcpProxy(server.host, server.port) as proxy:
            inbox = Inbox()
            async with (
                running(_via(federation, POLICE, proxy), Inbox()) as police,
                running(_via(federation, COUNCIL, proxy), inbox),
            ):
                await police.publish(COUNCIL, b"before", "e-1")
                await inbox.wait_for(1)
                await proxy.shut_down()
                await police.publish(COUNCIL, b"after", "e-2")
                deliveries = await inbox.wait_until(
                    lambda: any(d.body == b"after" for d in inbox.deliveries), seconds=20
                )
        assert {d.body for d in deliveries} == {b"before", b"after"}
        assert police.transport.answered == 1  # the direct URL, second in the list

    async def test_shutdown_does_not_hang_when_the_broker_is_gone(
        self, federation: Federation
    ) -> None:
        """Stopping the consumer and closing the transport finish even with no broker."""
        server = federation.vhost.server
        async with TcpProxy(server.host, server.port) as proxy:
            council = AmqpTransport(
                [str(URL(federation.url(COUNCIL)).with_port(proxy.port))],
                broker_user=federation.users[COUNCIL],
                agency=COUNCIL,
                reconnect_interval=0.2,
                confirm_timeout=1,
            )
            await council.__aenter__()
            task = asyncio.create_task(council.consume(Inbox()))
            await asyncio.sleep(0.3)
            await proxy.shut_down()
            started = time.monotonic()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await council.aclose()
        assert time.monotonic() - started < 5
        assert not council.connected


class TestReconnectionLog:
    async def test_an_outage_logs_one_line_per_attempt_with_growing_delays(
        self, federation: Federation, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Regression (three lines a second from three loggers): while the broker refuses, each
        attempt the broker side sees is one warning of ours; the waits double to the cap."""
        caplog.set_level(logging.INFO)
        server = federation.vhost.server
        async with TcpProxy(server.host, server.port) as proxy:
            url = str(URL(federation.url(COUNCIL)).with_port(proxy.port))
            async with running(federation.session(COUNCIL, [url]), Inbox()) as council:
                caplog.clear()
                proxy.refuse()
                await _until(lambda: len(_failed_attempts(caplog)) >= 6, seconds=20)
                proxy.relay()
                await _until(lambda: len(council.ups) == 2 and council.transport.consuming, 10)
        lost, *failed = [r for r in caplog.records if r.levelno >= logging.WARNING]
        [up] = [r for r in caplog.records if r.getMessage().startswith("broker connection up")]
        assert {r.name for r in [lost, *failed, up]} == {"agent.broker_session"}
        assert lost.getMessage().startswith("broker connection lost (")
        assert failed == _failed_attempts(caplog)  # nothing else, from no other logger
        assert len(failed) == proxy.refused  # one line per attempt made
        assert [r.args[0] for r in failed] == list(range(1, len(failed) + 1))  # type: ignore[index]
        waits = [r.args[-1] for r in [lost, *failed]]  # type: ignore[index]
        assert waits[:6] == [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
        assert up.args == (len(failed) + 1,)

    async def test_a_revoked_agency_logs_one_line_per_refused_attempt_then_stops(
        self, federation: Federation, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Its broker user removed (revocation provisioned): each refused attempt is one line
        with a growing wait, and once the manifest says revoked the session stops at once."""
        caplog.set_level(logging.INFO)
        async with running(federation.session(COUNCIL), Inbox(), stop_on_refusal=4) as council:
            caplog.clear()
            federation.vhost.server.api("DELETE", f"users/{federation.users[COUNCIL]}")
            await _until(lambda: council.task is not None and council.task.done(), seconds=20)
        assert council.returned
        lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert {r.name for r in lines} == {"agent.broker_session"}
        lost, *failed = lines
        assert lost.getMessage().startswith("broker connection lost (")
        assert len(failed) == 3 == council.refusals - 1  # the 4th refusal stopped, silently
        assert all("ACCESS_REFUSED" in r.getMessage() for r in failed)
        assert [r.args[-1] for r in lines] == [0.05, 0.1, 0.2, 0.4]  # type: ignore[index]
        assert len(council.ups) == 1

    async def test_wrong_credentials_are_access_refused(self, federation: Federation) -> None:
        """A broker refusing our user and password is AccessRefused, naming no password."""
        url = URL(federation.url(COUNCIL)).with_password("not-the-password")
        transport = AmqpTransport([str(url)], broker_user=federation.users[COUNCIL], agency=COUNCIL)
        with pytest.raises(AccessRefused) as caught:
            await transport.open()
        assert "not-the-password" not in caught.value.message


def _failed_attempts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("broker connection attempt")]


def _via(federation: Federation, agency: str, proxy: TcpProxy) -> BrokerSession:
    """A session whose first URL goes through ``proxy`` and whose second is direct."""
    direct = federation.url(agency)
    return federation.session(agency, [str(URL(direct).with_port(proxy.port)), direct])


class TcpProxy:
    """A TCP relay standing in for a broker node that can be taken away for good, or refuse
    (accept and close, counting each connection) for a while."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.refusing = False
        self.refused = 0  # connections accepted and closed at once while refusing

    def refuse(self) -> None:
        """Cut every relayed connection; close each new one at once (an outage that counts)."""
        self.refusing = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def relay(self) -> None:
        """End the outage: relay new connections again."""
        self.refusing = False

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shut_down()

    async def shut_down(self) -> None:
        """Stop listening and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


def _force_close(federation: Federation, names: list[str]) -> None:
    """Close connections by their client-given name through the management API."""
    server, quoted = federation.vhost.server, urllib.parse.quote(federation.vhost.name, safe="")
    deadline = time.monotonic() + 15
    while True:
        listed = server.api("GET", f"vhosts/{quoted}/connections") or []
        targets = [
            c["name"]
            for c in listed
            if (c.get("client_properties") or {}).get("connection_name") in names
        ]
        if len(targets) >= len(names):
            break
        assert time.monotonic() < deadline, f"connections {names} not listed: {listed}"
        time.sleep(0.2)
    for name in targets:
        server.api("DELETE", f"connections/{urllib.parse.quote(name, safe='')}")
