"""The case systems' side of a pipeline measurement: submit over HTTP, watch counters and inboxes.

Rules:
1. Every referral is SYNTHETIC (``federation.synth``): a high-risk Police Scotland concern whose
   ``narrative`` is padded so that the submitted payload JSON is ``size`` bytes.
2. Throughput: ``clients`` concurrent HTTP clients submit ``n`` referrals as fast as the agent
   answers 202; the clock runs from the first submit until the sender's
   ``isa_agent_receipts_total`` (receipts back, verified) and the recipient's
   ``isa_agent_received_total`` (inbox arrivals) have grown by ``n``; counters are polled every
   ``POLL`` seconds (that is the resolution). Also the CPU time each side used per message
   (``/proc/<pid>/stat``), which depends much less than wall time on what else the machine runs.
3. Latency: an open-loop submitter starts one submit every ``1/rate`` s (never waiting for the
   previous one); a watcher reads the recipient's inbox every ``INBOX_POLL`` s; latency = first
   seen in the inbox - submit started (the poll interval bounds the error).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from agent.actor import actor_headers
from benchmarks.agents import BENCH_ISA, AgentProcess
from benchmarks.rabbit import broker_cpu_seconds
from federation.synth import generate_referral

__all__ = ["KIND", "PURPOSE", "Api", "Flow", "latency", "percentile", "referral", "throughput"]

POLL = 0.02
INBOX_POLL = 0.005
PURPOSE, KIND = "advocacy_after_charge", "police_concern"


def referral(size: int, seed: int = 1) -> dict[str, Any]:
    """A synthetic high-risk police concern whose JSON is ``size`` bytes (when above ~1.3 KB)."""
    payload = generate_referral(KIND, random.Random(seed), risk_level="high")
    payload["narrative"] = ""
    pad = max(0, size - len(json.dumps(payload)))
    payload["narrative"] = ("SYNTHETIC " * (pad // 10 + 1))[:pad] or "SYNTHETIC"
    return payload


@dataclass(frozen=True)
class Flow:
    """Who sends to whom under which ISA."""

    sender: AgentProcess
    recipient: AgentProcess
    isa: str = BENCH_ISA

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"to": self.recipient.agency, "isa": self.isa, "purpose": PURPOSE, "type": KIND,
                "payload": payload}  # fmt: skip


#: The person the benchmark's case system names in every call (synthetic; agent.actor).
BENCH_ACTOR = actor_headers("SYN-BENCH-0001", "case_worker", "SYNTHETIC benchmark load")


class Api:
    """A case system's HTTP client for one agent."""

    def __init__(self, session: aiohttp.ClientSession, agent: AgentProcess) -> None:
        self.session, self.agent = session, agent
        self.headers = {"Authorization": f"Bearer {agent.token}", **BENCH_ACTOR}

    async def submit(self, body: dict[str, Any]) -> str:
        url = self.agent.url + "/v1/messages"
        async with self.session.post(url, json=body, headers=self.headers) as resp:
            answer = await resp.json(content_type=None)
            if resp.status != 202:
                raise RuntimeError(f"submit answered {resp.status}: {answer}")
            return str(answer["id"])

    async def counter(self, name: str) -> int:
        async with self.session.get(self.agent.url + "/metrics", headers=self.headers) as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        raise RuntimeError(f"no counter {name}")

    async def inbox(self, after: int) -> tuple[list[str], int]:
        url = f"{self.agent.url}/v1/inbox?after={after}&limit=500"
        async with self.session.get(url, headers=self.headers) as resp:
            page = await resp.json(content_type=None)
        return [item["id"] for item in page["items"]], int(page["next_cursor"])


async def _wait_counters(targets: list[tuple[Api, str, int]]) -> list[float]:
    """Poll until each counter reaches its target; the time.monotonic() each one got there."""
    reached: list[float | None] = [None] * len(targets)
    while None in reached:
        for i, (api, name, target) in enumerate(targets):
            if reached[i] is None and await api.counter(name) >= target:
                reached[i] = time.monotonic()
        await asyncio.sleep(POLL)
    return [t for t in reached if t is not None]


async def throughput(flows: Sequence[Flow], n: int, clients: int, size: int) -> dict[str, Any]:
    """Submit ``n`` referrals spread over ``flows``; receipts/s and inbox arrivals/s."""
    payload = referral(size)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        senders = {f.sender.agency: Api(session, f.sender) for f in flows}
        recipients = {f.recipient.agency: Api(session, f.recipient) for f in flows}
        share = {f.sender.agency: 0 for f in flows} | {f.recipient.agency: 0 for f in flows}
        for i in range(n):
            share[flows[i % len(flows)].sender.agency] += 1
            share[flows[i % len(flows)].recipient.agency] += 1
        base_r = {a: await api.counter("isa_agent_receipts_total") for a, api in senders.items()}
        base_i = {a: await api.counter("isa_agent_received_total") for a, api in recipients.items()}
        jobs = iter(range(n))
        cpu = _cpu(flows)
        start = time.monotonic()

        async def client() -> None:
            for i in jobs:
                flow = flows[i % len(flows)]
                await senders[flow.sender.agency].submit(flow.body(payload))

        async with asyncio.TaskGroup() as group:
            for _ in range(clients):
                group.create_task(client())
        accepted = time.monotonic()
        receipts = await _wait_counters([(api, "isa_agent_receipts_total", base_r[a] + share[a])
                                         for a, api in senders.items()])  # fmt: skip
        inbox = await _wait_counters([(api, "isa_agent_received_total", base_i[a] + share[a])
                                      for a, api in recipients.items()])  # fmt: skip
        used = [after - before for before, after in zip(cpu, _cpu(flows), strict=True)]
    return {
        "messages": n, "clients": clients, "payload_bytes": len(json.dumps(payload)),
        "cpu_ms_per_msg": {"senders": used[0] * 1000 / n, "recipients": used[1] * 1000 / n,
                           "load_generator": used[2] * 1000 / n, "broker": used[3] * 1000 / n},
        "accepted_per_s": n / (accepted - start),
        "receipts_per_s": n / (max(receipts) - start),
        "inbox_per_s": n / (max(inbox) - start),
    }  # fmt: skip


def _cpu(flows: Sequence[Flow]) -> tuple[float, float, float, float]:
    """CPU seconds used so far by the senders, the recipients, this process, the broker."""
    senders = {f.sender.pid: f.sender for f in flows}.values()
    recipients = {f.recipient.pid: f.recipient for f in flows}.values()
    return (sum(a.cpu_seconds() for a in senders), sum(a.cpu_seconds() for a in recipients),
            time.process_time(), broker_cpu_seconds())  # fmt: skip


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


async def latency(flow: Flow, n: int, rate: float, size: int) -> dict[str, Any]:
    """Open-loop submits at ``rate``/s; submit -> first seen in the recipient's inbox."""
    body = flow.body(referral(size))
    started: dict[str, float] = {}
    answered: list[float] = []
    seen: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sender, recipient = Api(session, flow.sender), Api(session, flow.recipient)
        _, cursor = await recipient.inbox(0)
        while True:  # skip what earlier measurements left in the inbox
            ids, cursor = await recipient.inbox(cursor)
            if not ids:
                break

        async def one() -> None:
            t0 = time.monotonic()
            message_id = await sender.submit(body)
            answered.append(time.monotonic() - t0)
            started[message_id] = t0

        begin = time.monotonic()
        until = begin + n / rate + 60
        watcher = asyncio.create_task(_watch_from(recipient, cursor, seen, n, until))
        async with asyncio.TaskGroup() as group:
            for i in range(n):
                await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
                group.create_task(one())
        offered = n / (time.monotonic() - begin)
        await watcher
    latencies = [(seen[m] - t0) * 1000 for m, t0 in started.items() if m in seen]
    return {
        "messages": n, "rate_offered": rate, "rate_achieved": offered,
        "delivered": len(latencies), "payload_bytes": len(json.dumps(body["payload"])),
        "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies),
        "submit_p50_ms": percentile(answered, 50) * 1000,
        "submit_p99_ms": percentile(answered, 99) * 1000,
    }  # fmt: skip


async def _watch_from(api: Api, cursor: int, seen: dict[str, float], n: int, until: float) -> None:
    while len(seen) < n and time.monotonic() < until:
        ids, cursor = await api.inbox(cursor)
        now = time.monotonic()
        for message_id in ids:
            seen.setdefault(message_id, now)
        if not ids:
            await asyncio.sleep(INBOX_POLL)
