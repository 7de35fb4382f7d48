"""Per-agency isolation on the real broker, with the credentials provisioning hands out.

Agency A may publish to ``isa.messages`` as itself and consume ``isa.inbox.A``; everything else
is refused by RabbitMQ: no declaring, binding, deleting or purging, no other agency's queue, no
other exchange (the default one included), no other agency's ``user_id``.

Also pinned here for the agent's author (what RabbitMQ 3.10 does with these permissions):
- a passive ``queue.declare`` needs no permission, so ``channel.get_queue(inbox)`` works;
- RabbitMQ validates ``user_id`` only when it is set: a receiver must require it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

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

