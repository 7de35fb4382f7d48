"""Per-agency isolation on the real broker, with the credentials provisioning hands out.

Agency A may publish to ``isa.messages`` as itself and consume ``isa.inbox.A``; everything else
is refused by RabbitMQ: no declaring, binding, deleting or purging, no other agency's queue, no
other exchange (the default one included), no other agency's ``user_id``.

Also pinned here for the agent's author (what RabbitMQ 3.10 does with these permissions):
- a passive ``queue.declare`` needs no permission, so ``channel.get_queue(inbox)`` works;
- RabbitMQ validates ``user_id`` only when it is set: a receiver must require it.

And what no permission can take away (``broker/provision.py`` rule 7, issue 13 point 5): A may
purge its own inbox (``read`` governs purge as it governs consume), and on a RabbitMQ that
checks nothing on a passive declare (up to 4.2.5) A learns the message count of B's inbox; from
4.2.7 / 4.3.1 the same grants make that declare fail. Which of the two holds is asked of the
broker under test, so each version runs the test that states its behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from agent.transport import AmqpTransport, Delivery, Outcome
from broker.provision import PassiveDeclareCheck, passive_declare_check
from tests.integration.test_provision import Federation, make_federation, remove_federation
from tests.support.rabbitmq import RabbitServer

pytestmark = pytest.mark.rabbitmq

Attempt = Callable[[AbstractChannel, Federation], Awaitable[Any]]


@pytest.fixture(scope="module")
def fed(rabbit_server: RabbitServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Federation]:
    """Two provisioned agencies, shared by this module's tests (none of them leaves mail)."""
    federation = make_federation(rabbit_server, tmp_path_factory.mktemp("isolation"))
    try:
        code, _ = federation.provision()
        assert code == 0
        yield federation
    finally:
        remove_federation(federation)


async def as_agency_a(fed: Federation, attempt: Attempt) -> Any:
    """Run ``attempt`` on a confirming channel of a connection logged in as agency A."""
    connection = await aio_pika.connect(fed.amqp_url(fed.a))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        return await attempt(channel, fed)


async def publish(channel: AbstractChannel, exchange: str, key: str, user_id: str | None) -> Any:
    target = (channel.default_exchange if exchange == ""
              else await channel.get_exchange(exchange, ensure=False))
    return await target.publish(aio_pika.Message(b"synthetic", user_id=user_id),
                                routing_key=key)


async def ignore(message: AbstractIncomingMessage) -> None:
    """A consumer callback that never gets called here."""


async def consume_b_inbox(channel: AbstractChannel, fed: Federation) -> Any:
    queue = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
    return await queue.consume(ignore)


async def get_from_b_inbox(channel: AbstractChannel, fed: Federation) -> Any:
    queue = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
    return await queue.get(fail=False)


async def purge_b_inbox(channel: AbstractChannel, fed: Federation) -> Any:
    queue = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
    return await queue.purge()


async def bind_own_inbox_to_b_key(channel: AbstractChannel, fed: Federation) -> Any:
    queue = await channel.get_queue(f"isa.inbox.{fed.a}", ensure=False)
    return await queue.bind("isa.messages", routing_key=fed.b)


REFUSED: dict[str, Attempt] = {
    "consume B's inbox": consume_b_inbox,
    "basic.get from B's inbox": get_from_b_inbox,
    "purge B's inbox": purge_b_inbox,
    "declare a queue": lambda ch, fed: ch.declare_queue("a-private", durable=True),
    "redeclare own inbox actively": lambda ch, fed: ch.declare_queue(
        f"isa.inbox.{fed.a}", durable=True, arguments={"x-queue-type": "quorum"}),
    "declare an exchange": lambda ch, fed: ch.declare_exchange("a-exchange", durable=True),
    "bind own inbox to B's routing key": bind_own_inbox_to_b_key,
    "delete B's inbox": lambda ch, fed: ch.queue_delete(f"isa.inbox.{fed.b}"),
    "delete the exchange": lambda ch, fed: ch.exchange_delete("isa.messages"),
    "publish to the default exchange": lambda ch, fed: publish(
        ch, "", f"isa.inbox.{fed.b}", fed.a),
    "publish to isa.dead": lambda ch, fed: publish(ch, "isa.dead", fed.b, fed.a),
    "publish to amq.direct": lambda ch, fed: publish(ch, "amq.direct", fed.b, fed.a),
}


class TestAgencyIsRefused:
    @pytest.mark.parametrize("attempt", list(REFUSED), ids=list(REFUSED))
    async def test_access_refused(self, fed: Federation, attempt: str) -> None:
        """Each of these closes A's channel with ACCESS_REFUSED."""
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
            await as_agency_a(fed, REFUSED[attempt])

    async def test_publishing_with_another_agencys_user_id_is_refused(
        self, fed: Federation
    ) -> None:
        """RabbitMQ validates user_id: A cannot publish as B (PRECONDITION_FAILED)."""
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed,
                           match="user_id property set to"):
            await as_agency_a(fed, lambda ch, f: publish(ch, "isa.messages", f.a, f.b))

    async def test_wrong_password_cannot_log_in(self, fed: Federation) -> None:
        """Only the provisioned password opens A's account."""
        with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(fed.amqp_url(fed.a, password="not-the-password"))


class TestAgencyIsAllowed:
    async def test_a_sends_to_b_and_b_receives_it_from_its_inbox(self, fed: Federation) -> None:
        """A publishes to isa.messages as itself; B gets the bytes with A's user_id."""
        await as_agency_a(fed, lambda ch, f: publish(ch, "isa.messages", f.b, f.a))
        connection = await aio_pika.connect(fed.amqp_url(fed.b))
        async with connection:
            channel = await connection.channel()
            inbox = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
            message = await inbox.get(timeout=5)
            await message.ack()
        assert (message.body, message.user_id) == (b"synthetic", fed.a)

    async def test_passive_declare_of_own_inbox_needs_no_configure_permission(
        self, fed: Federation
    ) -> None:
        """An agent may check its inbox exists with a passive declare (get_queue)."""
        queue = await as_agency_a(
            fed, lambda ch, f: ch.declare_queue(f"isa.inbox.{f.a}", passive=True))
        assert queue.name == f"isa.inbox.{fed.a}"

    async def test_broker_accepts_a_message_without_user_id_so_receivers_must_require_it(
        self, fed: Federation
    ) -> None:
        """RabbitMQ checks user_id only when present: the receiving agent must insist on it."""
        await as_agency_a(fed, lambda ch, f: publish(ch, "isa.messages", f.b, None))
        connection = await aio_pika.connect(fed.amqp_url(fed.b))
        async with connection:
            channel = await connection.channel()
            inbox = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
            message = await inbox.get(timeout=5)
            await message.ack()
        assert message.user_id is None



def passive_declares(fed: Federation) -> PassiveDeclareCheck:
    """What the broker under test checks on a passive queue.declare."""
    return passive_declare_check(fed.api("GET", "overview")["rabbitmq_version"])


def transport(fed: Federation, agency: str) -> AmqpTransport:
    """The agent's own transport, logged in with the credentials provisioning handed out."""
    return AmqpTransport([fed.amqp_url(agency)], broker_user=agency, agency=agency)


class TestWhatTheAgentDoesWorks:
    async def test_agent_transport_publishes_and_consumes_with_the_provisioned_grants(
        self, fed: Federation
    ) -> None:
        """A's transport publishes (confirmed, mandatory); B's consumes its inbox and acks it."""
        received: asyncio.Queue[Delivery] = asyncio.Queue()

        async def handler(delivery: Delivery) -> Outcome:
            await received.put(delivery)
            return Outcome.ACK

        async with transport(fed, fed.a) as sender, transport(fed, fed.b) as recipient:
            await sender.publish(fed.b, b"synthetic", message_id="m-1", kind="envelope")
            consumer = asyncio.create_task(recipient.consume(handler))
            try:
                delivery = await asyncio.wait_for(received.get(), timeout=10)
            finally:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
        depth = await as_agency_b_passive_depth(fed)
        assert (delivery.body, delivery.user_id, delivery.kind, depth) == (
            b"synthetic", fed.a, "envelope", 0)


async def as_agency_b_passive_depth(fed: Federation) -> int:
    """The message count B's own passive declare of its inbox answers."""
    connection = await aio_pika.connect(fed.amqp_url(fed.b))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"isa.inbox.{fed.b}", passive=True)
        return queue.declaration_result.message_count or 0


class TestWhatNoPermissionCanTakeAway:
    async def test_agency_can_purge_its_own_inbox_because_read_also_governs_purge(
        self, fed: Federation
    ) -> None:
        """A purge of A's own inbox is allowed: it only loses A's own mail (rule 7)."""
        await as_agency_a(fed, lambda ch, f: publish(ch, "isa.messages", f.a, f.a))

        async def purge_own_inbox(channel: AbstractChannel, fed: Federation) -> Any:
            queue = await channel.get_queue(f"isa.inbox.{fed.a}", ensure=False)
            return await queue.purge()

        purged = await as_agency_a(fed, purge_own_inbox)
        assert purged.message_count == 1

    async def test_passive_declare_of_another_agencys_inbox_behaves_as_the_version_table_says(
        self, fed: Federation
    ) -> None:
        """From RabbitMQ 4.2.7 / 4.3.1 the grants keep B's inbox depth from A; up to 4.2.5
        (3.10 included) a passive declare is unchecked and tells A how many messages wait for B
        (rule 7: the table in ``broker.provision`` decides which, by the broker's version)."""
        check = passive_declares(fed)
        if check is PassiveDeclareCheck.ANY_PERMISSION:
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
                await as_agency_a(fed, lambda ch, f: ch.declare_queue(f"isa.inbox.{f.b}",
                                                                      passive=True))
            return
        assert check is PassiveDeclareCheck.NOTHING
        await as_agency_a(fed, lambda ch, f: publish(ch, "isa.messages", f.b, f.a))
        try:
            queue = await as_agency_a(fed, lambda ch, f: ch.declare_queue(f"isa.inbox.{f.b}",
                                                                          passive=True))
            assert queue.declaration_result.message_count == 1
        finally:
            await purge_as_b(fed)


async def purge_as_b(fed: Federation) -> None:
    """Leave B's inbox empty for the module's other tests."""
    connection = await aio_pika.connect(fed.amqp_url(fed.b))
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"isa.inbox.{fed.b}", ensure=False)
        await queue.purge()
