"""The baseline: raw aio-pika between two processes, with the agents' delivery guarantees.

A consumer process and a publisher process on a throw-away vhost. Like the agents' transport:
a direct exchange, a **quorum** queue, PERSISTENT messages, publisher confirms (a window of
``window`` unconfirmed publishes, like the relay's concurrent batch), manual acks with a bounded
prefetch (32, the agents' default). No crypto, no HTTP, no SQLite: the ceiling the pipeline is
compared with.

Throughput = messages / (consumer's last ack - publisher's first publish), both read from the
same wall clock (one machine).

    .venv/bin/python -m benchmarks.raw_amqp consume URL N      # prints "ready", then JSON
    .venv/bin/python -m benchmarks.raw_amqp publish URL N SIZE  # prints JSON
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.abc

from benchmarks.rabbit import broker_cpu_seconds
from devtools.management import Broker

__all__ = ["RawResult", "run_raw"]

EXCHANGE = "bench.messages"
QUEUE = "bench.inbox"
PREFETCH = 32
WINDOW = 200
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RawResult:
    messages: int
    size: int
    seconds: float
    cpu_ms_per_msg: float  # publisher + consumer processes (start-up included)
    broker_cpu_ms_per_msg: float  # the local RabbitMQ node, whatever else it was doing

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "size_bytes": self.size, "seconds": self.seconds,
                "msg_per_s": self.per_second, "cpu_ms_per_msg": self.cpu_ms_per_msg,
                "broker_cpu_ms_per_msg": self.broker_cpu_ms_per_msg}  # fmt: skip


async def _declare(channel: aio_pika.abc.AbstractChannel) -> aio_pika.abc.AbstractQueue:
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await channel.declare_queue(QUEUE, durable=True,
                                        arguments={"x-queue-type": "quorum"})  # fmt: skip
    await queue.bind(exchange, routing_key=QUEUE)
    return queue


async def consume(url: str, n: int) -> dict[str, float]:
    """Ack ``n`` messages; returns the wall-clock times of the first and last ack."""
    done = asyncio.Event()
    times: list[float] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        times.append(time.time())
        if len(times) >= n:
            done.set()

    async with await aio_pika.connect(url) as conn:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await _declare(channel)
        await queue.consume(on_message, no_ack=False)
        print("ready", flush=True)
        await done.wait()
    return {"first": times[0], "last": times[-1]}


async def publish(url: str, n: int, size: int) -> dict[str, float]:
    """Publish ``n`` persistent, confirmed messages of ``size`` bytes, ``WINDOW`` in flight."""
    body = (b"SYNTHETIC " * (size // 10 + 1))[:size]
    async with await aio_pika.connect(url) as conn:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE)
        window = asyncio.Semaphore(WINDOW)

        async def one(i: int) -> None:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                       message_id=f"SYN-{i}", type="envelope")  # fmt: skip
            try:
                await exchange.publish(message, routing_key=QUEUE, mandatory=True)
            finally:
                window.release()

        start = time.time()
        async with asyncio.TaskGroup() as group:
            for i in range(n):
                await window.acquire()
                group.create_task(one(i))
        return {"start": start, "end": time.time()}


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.raw_amqp", *args],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_raw(rabbit: Broker, n: int, size: int) -> RawResult:
    """One measurement on a fresh vhost: start the consumer, then the publisher."""
    with rabbit.throwaway_vhost("bench-raw") as vhost:
        url = rabbit.amqp_url_for(vhost)
        broker_before = broker_cpu_seconds()
        consumer = _spawn("consume", url, str(n))
        try:
            assert consumer.stdout is not None
            if consumer.stdout.readline().strip() != "ready":
                raise RuntimeError("the raw consumer did not start")
            publisher = _spawn("publish", url, str(n), str(size))
            out, _ = publisher.communicate(timeout=600)
            sent = json.loads(out)
            received = json.loads(consumer.communicate(timeout=600)[0])
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
    cpu_ms = (sent["cpu"] + received["cpu"]) * 1000 / n
    broker_ms = (broker_cpu_seconds() - broker_before) * 1000 / n
    return RawResult(n, size, received["last"] - sent["start"], cpu_ms, broker_ms)


def main(argv: list[str]) -> None:
    role, url, n = argv[0], argv[1], int(argv[2])
    if role == "consume":
        result = asyncio.run(consume(url, n))
    else:
        result = asyncio.run(publish(url, n, int(argv[3])))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps(result | {"cpu": usage.ru_utime + usage.ru_stime}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
