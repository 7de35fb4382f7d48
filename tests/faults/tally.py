"""Counting "nothing lost, nothing doubled" for the fault scenarios, and a case system that retries.

Rules:
1. ``accepted`` is what the sender answered 202 to (the promise); ``received`` is every delivery
   id the recipient's case system was handed, in order, repeats included.
2. ``lost`` = accepted ids never received; ``duplicated`` = receptions beyond the first of an id;
   ``unexpected`` = received ids never accepted (a 503 whose message went out anyway, say).
   A scenario passes only with lost == duplicated == unexpected == 0 and delivered == sent.
3. The case system (``CaseSystem.submit_all``) behaves as a real one must: a 503 or a dropped
   connection means "not accepted", so it submits again after a pause, until a 202; any other
   status fails the test at once (a 500 is never acceptable). With ``idempotency_key`` in the
   bodies a resubmission of a request whose answer was lost returns the first id.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from federation.synth import generate_referral
from tests.support.federation import AgentHandle

__all__ = [
    "ISA",
    "KIND",
    "PURPOSE",
    "RECIPIENT",
    "SENDER",
    "CaseSystem",
    "Tally",
    "Timer",
    "read_inbox",
    "referrals",
    "tally",
]

SENDER, RECIPIENT = "police-scotland", "assist"
ISA, PURPOSE, KIND = "isa-police-assist-advocacy", "advocacy_after_charge", "police_concern"


def referrals(count: int, tag: str, *, keyed: bool = True) -> list[dict[str, Any]]:
    """``count`` synthetic submissions SENDER -> RECIPIENT (an idempotency key each if keyed)."""
    payloads = [generate_referral(KIND, random.Random(s), risk_level="high") for s in range(8)]
    bodies: list[dict[str, Any]] = []
    for i in range(count):
        body = {"to": RECIPIENT, "isa": ISA, "purpose": PURPOSE, "type": KIND,
                "payload": payloads[i % len(payloads)]}  # fmt: skip
        if keyed:
            body["idempotency_key"] = f"SYN-{tag}-{i}"
        bodies.append(body)
    return bodies


@dataclass(frozen=True)
class Tally:
    sent: int
    delivered: int
    duplicated: int
    lost: int
    unexpected: int

    def line(self) -> str:
        return (
            f"sent={self.sent} delivered={self.delivered} duplicated={self.duplicated} "
            f"lost={self.lost} unexpected={self.unexpected}"
        )

    @property
    def exactly_once(self) -> bool:
        return (self.duplicated, self.lost, self.unexpected) == (0, 0, 0) and (
            self.delivered == self.sent
        )


def tally(accepted: Iterable[str], received: Iterable[str]) -> Tally:
    """Compare the 202-accepted ids with the ids the recipient's case system was handed."""
    promised, counts = set(accepted), Counter(received)
    return Tally(
        sent=len(promised),
        delivered=len(promised & set(counts)),
        duplicated=sum(n - 1 for n in counts.values()),
        lost=len(promised - set(counts)),
        unexpected=len(set(counts) - promised),
    )


@dataclass
class CaseSystem:
    """Submits referrals to a sender agent the way a careful case system does (rule 3)."""

    agent: AgentHandle
    concurrency: int = 8
    retry_pause: float = 0.2
    rate: float | None = None  # submissions started per second (None: as fast as allowed)
    within: float = 120.0
    accepted: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)  # HTTP status (or "down") -> count
    on_accepted: Callable[[int], None] | None = None

    async def submit_all(self, bodies: Iterable[dict[str, Any]]) -> list[str]:
        """Submit each body until it is accepted; returns the accepted ids (completion order)."""
        gate = asyncio.Semaphore(self.concurrency)
        deadline = asyncio.get_running_loop().time() + self.within
        async with asyncio.TaskGroup() as group:
            for body in bodies:
                group.create_task(self._until_accepted(body, gate, deadline))
                if self.rate is not None:
                    await asyncio.sleep(1 / self.rate)
        return self.accepted

    async def _until_accepted(
        self, body: dict[str, Any], gate: asyncio.Semaphore, deadline: float
    ) -> None:
        while True:
            async with gate:
                status, reply = await self._post(body)
            self.answers[str(status)] += 1
            if status == 202:
                self.accepted.append(reply["id"])
                if self.on_accepted is not None:
                    self.on_accepted(len(self.accepted))
                return
            assert status in (0, 503), (status, reply)  # never a 500, never a 4xx here
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not accepted within {self.within}s: {status} {reply}")
            await asyncio.sleep(self.retry_pause)

    async def _post(self, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            return await self.agent.post("/v1/messages", body)
        except (aiohttp.ClientError, TimeoutError) as exc:  # the agent is down or restarting
            return 0, type(exc).__name__


async def read_inbox(agent: AgentHandle, expected: int, within: float = 60) -> list[str]:
    """Read and ack the recipient's inbox until ``expected`` ids arrived (or time is up), then
    wait one more second and read again so that a late duplicate would be counted too."""
    ids = [item["id"] for item in await agent.drain_inbox(expected, within=within)]
    await asyncio.sleep(1.0)
    ids += [item["id"] for item in await agent.drain_inbox(1, within=0.5)]
    return ids


class Timer:
    """Wall time of one scenario, printed with its tally."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started
