"""The test broker is real and each test gets an isolated vhost."""

import aio_pika
import pytest

from tests.support.rabbitmq import RabbitVhost

pytestmark = pytest.mark.rabbitmq


async def test_round_trip_a_persistent_message_through_the_real_broker(
    rabbit_vhost: RabbitVhost,
) -> None:
    """A message published with confirms to a fresh vhost comes back intact."""
    connection = await aio_pika.connect(rabbit_vhost.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("probe", durable=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"hello", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="probe",
        )
        incoming = await queue.get(timeout=5)
        await incoming.ack()
    assert incoming.body == b"hello"
