"""The backlog test: ``n`` envelopes queued for an offline agent, then its drain rate and memory.

Rules:
1. The backlog is built fast and honestly: the sender's own keys, ISA and manifest (loaded as
   its agent loads them, ``agent.runtime.open_agent``) seal ``n`` real envelopes (each its own
   id, nonce and ephemeral key), published straight into the exchange as the sender's broker
   user (persistent, confirmed, ``user_id`` checked by RabbitMQ), exactly as its relay would.
   The sender's agent is not running; the recipient's agent is not started until all ``n`` are
   in its queue.
2. Then the recipient's agent starts (``isa-agent run``) and drains: every envelope is verified,
   opened, checked against the ISA, stored durably, and answered with a signed receipt.
3. Every ``SAMPLE`` s: the agent's VmRSS from ``/proc/<pid>/status`` and its
   ``isa_agent_received_total``. Memory is "flat" when the RSS at the end of the drain is within
   ``FLAT_MIB`` of the RSS once 10 % had drained (start-up and warm-up excluded).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika

from agent.config import load_settings
from agent.runtime import open_agent
from agent.trust import sendable_manifest
from benchmarks.agents import (
    BENCH_ISA,
    AgentProcess,
    bench_ids,
    federation,
    scaling_policies,
    start_agent,
    wait_ready,
)
from benchmarks.workload import KIND, PURPOSE, referral
from broker.devfed import DevFederation
from devtools.federation import vhost_of
from devtools.management import Broker
from federation.envelope import peek_header, seal
from federation.pipeline import prepare
from federation.topology import EXCHANGE, inbox_queue

__all__ = ["run_backlog"]

SAMPLE = 0.5
FLAT_MIB = 32.0
WINDOW = 500


async def seal_all(
    fed: DevFederation, sender: str, recipient: str, n: int, size: int
) -> list[tuple[str, bytes]]:
    """``n`` sealed envelopes from ``sender`` to ``recipient``, with their ids."""
    settings = load_settings(fed.agency(sender).config, environ={})
    async with open_agent(settings) as ctx:
        now = ctx.clock()
        isa = ctx.trust.isas(now).get(BENCH_ISA)
        assert isa is not None, BENCH_ISA
        prepared = prepare(
            isa,
            sender=sender,
            recipient=recipient,
            purpose=PURPOSE,
            message_type=KIND,
            payload=referral(size),
            now=now,
            ttl=timedelta(hours=settings.limits.message_ttl_hours),
        )
        assert prepared.spec is not None, prepared.decision.reasons
        key = sendable_manifest(ctx.trust, now, isa).current_encryption_key(recipient, now)
        assert key is not None
        frames = [
            seal(
                prepared.payload,
                prepared.spec,
                signing_key=ctx.signing_key,
                recipient_public=key.public_bytes(),
                now=now,
            )
            for _ in range(n)
        ]
    return [(frame_id(f), f) for f in frames]  # fmt: skip


def frame_id(frame: bytes) -> str:
    return peek_header(frame).id


async def publish_all(
    url: str, user: str, recipient: str, frames: list[tuple[str, bytes]]
) -> None:
    """Publish as broker user ``user`` (confirmed, persistent), ``WINDOW`` unconfirmed at a
    time."""
    async with await aio_pika.connect(url) as conn:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        window = asyncio.Semaphore(WINDOW)

        async def one(message_id: str, frame: bytes) -> None:
            message = aio_pika.Message(
                frame, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id,
                type="envelope", user_id=user, content_type="application/octet-stream",
            )  # fmt: skip
            try:
                await exchange.publish(message, routing_key=recipient, mandatory=True)
            finally:
                window.release()

        async with asyncio.TaskGroup() as group:
            for message_id, frame in frames:
                await window.acquire()
                group.create_task(one(message_id, frame))


async def queue_depth(url: str, queue: str) -> int:
    """Messages ready in ``queue`` now, from a passive declare (the management API's figure
    is a statistic refreshed every few seconds, and read low just after a fast publish)."""
    async with await aio_pika.connect(url) as conn:
        channel = await conn.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count) if result.message_count is not None else 0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def received(agent: AgentProcess) -> int:
    req = urllib.request.Request(agent.url + "/metrics",
                                 headers={"Authorization": f"Bearer {agent.token}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("isa_agent_received_total "):
                return int(float(line.split()[1]))
    return 0


def drain(agent: AgentProcess, n: int, timeout: float) -> list[tuple[float, float, int]]:
    """Samples (seconds since ready, RSS MiB, received) until ``n`` arrived."""
    start, samples = time.monotonic(), []
    while True:
        count = received(agent)
        samples.append((time.monotonic() - start, rss_mib(agent.pid), count))
        if count >= n:
            return samples
        if time.monotonic() - start > timeout or not agent.running:
            raise RuntimeError(f"drain stalled at {count}/{n}: see {agent.log}")
        time.sleep(SAMPLE)


def _at(samples: list[tuple[float, float, int]], n: int, share: float) -> float:
    return next(rss for _, rss, count in samples if count >= n * share)


def summarise(samples: list[tuple[float, float, int]], n: int) -> dict[str, Any]:
    seconds = samples[-1][0]
    at10, end = _at(samples, n, 0.1), samples[-1][1]
    return {
        "drain_seconds": seconds, "drain_per_s": (n - samples[0][2]) / seconds,
        "rss_mib_at_ready": samples[0][1], "rss_mib_peak": max(s[1] for s in samples),
        "rss_mib_by_share": {f"{p}%": _at(samples, n, p / 100) for p in (10, 25, 50, 75, 100)},
        "rss_growth_after_10pct_mib": end - at10, "flat": end - at10 <= FLAT_MIB,
        "samples": [[round(t, 2), round(r, 1), c] for t, r, c in samples],
    }  # fmt: skip


def run_backlog(
    rabbit: Broker, root: Path, n: int, size: int, prefetch: int | None = None
) -> dict[str, Any]:
    """Build the backlog, start the recipient, measure; the vhost is removed afterwards."""
    (sender,), (recipient,) = bench_ids(1, 1)
    policies = scaling_policies(root / "policies", [sender], [recipient])
    with federation(rabbit, root / "fed", agencies=[sender, recipient], policies=policies) as fed:
        t0 = time.monotonic()
        frames = asyncio.run(seal_all(fed, sender, recipient, n, size))
        sealed = time.monotonic() - t0
        dev = fed.agency(sender)
        url = rabbit.amqp_url_for(vhost_of(fed), dev.broker_user, dev.broker_password)
        asyncio.run(publish_all(url, dev.broker_user, recipient, frames))
        published = time.monotonic() - t0 - sealed
        del frames
        depth = asyncio.run(queue_depth(rabbit.amqp_url_for(vhost_of(fed)), inbox_queue(recipient)))
        agent = start_agent(fed, recipient, prefetch)
        try:
            wait_ready(rabbit, fed, [agent])
            result = summarise(drain(agent, n, timeout=max(600.0, n / 20)), n)
        finally:
            agent.stop()
    return {"messages": n, "payload_bytes": size, "seal_seconds": sealed,
            "publish_seconds": published, "queue_depth_before_start": depth} | result  # fmt: skip
