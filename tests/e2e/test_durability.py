"""Nothing lost, nothing doubled: 202-accepted referrals across a stopped recipient and a
SIGKILLed sender, counted at the recipient's case-system API against a real RabbitMQ.

"Exactly once" is checked where the case system sees it: the recipient's ``GET /v1/inbox``
lists every accepted id, and no id twice; the sender reports every one ``delivered`` (a verified
receipt came back). Each test prints the time it measured (``pytest -s`` shows it).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp
import pytest

from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import AgentHandle
from tests.support.processes import (
    ProcessAgent,
    duplicates,
    isolated_federation_fixture,  # noqa: F401 - the isolated_federation fixture
    submit_many,
    wait_all_status,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SENDER, RECIPIENT = "police-scotland", "assist"
ISA, PURPOSE, KIND = "isa-police-assist-advocacy", "advocacy_after_charge", "police_concern"


def referrals(count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` distinct submissions (a few synthetic payloads, one idempotency key each)."""
    payloads = [generate_referral(KIND, random.Random(s), risk_level="high") for s in range(8)]
    return [
        {"to": RECIPIENT, "isa": ISA, "purpose": PURPOSE, "type": KIND,
         "payload": payloads[i % len(payloads)], "idempotency_key": f"SYN-{tag}-{i}"}
        for i in range(count)
    ]  # fmt: skip


async def outbox_empty(agent: AgentHandle, within: float = 30) -> None:
    """Wait until the sender's outbox holds nothing unsent."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        status, health = await agent.get("/healthz")
        if status == 200 and health["outbox_depth"] == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"outbox not empty after {within}s: {health}")
        await asyncio.sleep(0.1)


async def received_ids(
    recipient: AgentHandle, expected: int, within: float = 60
) -> tuple[list[str], int]:
    """Every id the recipient's case-system API lists (paging by cursor, not acking), once
    ``expected`` arrived or the time is up; and the cursor after the last one."""
    ids: list[str] = []
    cursor, deadline = 0, asyncio.get_running_loop().time() + within
    while len(ids) < expected and asyncio.get_running_loop().time() < deadline:
        status, page = await recipient.get(f"/v1/inbox?after={cursor}&limit=500")
        assert status == 200, page
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["items"]:
            await asyncio.sleep(0.1)
    return ids, cursor


async def assert_delivered_exactly_once(
    sender: AgentHandle, recipient: AgentHandle, accepted: list[str], within: float = 60
) -> None:
    received, cursor = await received_ids(recipient, len(accepted), within)
    assert duplicates(received) == []
    assert sorted(received) == sorted(accepted)
    statuses = await wait_all_status(sender, accepted, "delivered", within=within)
    assert statuses == {"delivered": len(accepted)}
    await asyncio.sleep(0.5)  # a late duplicate would have arrived by now
    status, page = await recipient.get(f"/v1/inbox?after={cursor}&limit=10")
    assert (status, page["items"]) == (200, [])


class TestRecipientOffline:
    @pytest.mark.parametrize(
        ("count", "stop"),
        [(1000, "SIGTERM"), (200, "SIGKILL")],
        ids=["1000-SIGTERM", "200-SIGKILL"],
    )
    async def test_stopped_while_messages_are_sent_then_started_all_delivered_exactly_once(
        self, isolated_federation: DevFederation, count: int, stop: str
    ) -> None:
        """The recipient process stops mid-stream (drained or killed); after restart, each once."""
        bodies = referrals(count, f"offline-{stop}")
        async with aiohttp.ClientSession() as session:
            sender = ProcessAgent.of(isolated_federation, SENDER, session)
            recipient = ProcessAgent.of(isolated_federation, RECIPIENT, session)
            recipient.event_loop = "asyncio"  # both event loops end to end (sender: uvloop)
            halt = recipient.shutdown if stop == "SIGTERM" else recipient.kill
            await asyncio.gather(sender.start(), recipient.start())
            try:
                started = time.perf_counter()
                stopping: list[asyncio.Task[None]] = []

                def stop_recipient_at(accepted: int) -> None:
                    if accepted == count // 5:  # the recipient goes away while the rest are sent
                        stopping.append(asyncio.create_task(halt()))

                accepted = await submit_many(sender, bodies, on_accepted=stop_recipient_at)
                await stopping[0]
                submitted = time.perf_counter() - started
                await outbox_empty(sender)
                await recipient.start()
                await assert_delivered_exactly_once(sender, recipient, accepted)
                total = time.perf_counter() - started
            finally:
                await asyncio.gather(sender.kill(), recipient.kill())
        assert len(accepted) == count
        print(f"\n{count} messages, recipient {stop}ed after {count // 5}: submitted in"
              f" {submitted:.1f}s, all delivered and receipted in {total:.1f}s")  # fmt: skip


class TestSenderCrash:
    async def test_sigkilled_after_a_burst_of_202s_every_accepted_message_delivered_once(
        self, isolated_federation: DevFederation
    ) -> None:
        """SIGKILL the sender process right after its last 202; restart: each accepted id once."""
        bodies = referrals(200, "crash")
        async with aiohttp.ClientSession() as session:
            sender = ProcessAgent.of(isolated_federation, SENDER, session)
            recipient = ProcessAgent.of(isolated_federation, RECIPIENT, session)
            await asyncio.gather(sender.start(), recipient.start())
            try:
                accepted = await submit_many(sender, bodies, concurrency=32)
                await sender.kill()
                _, page = await recipient.get("/v1/inbox?after=0&limit=500")
                before_restart = len(page["items"])
                started = time.perf_counter()
                await sender.start()
                await assert_delivered_exactly_once(sender, recipient, accepted)
                total = time.perf_counter() - started
            finally:
                await asyncio.gather(sender.kill(), recipient.kill())
        assert len(accepted) == 200
        print(
            f"\nsender SIGKILLed after 200 x 202 ({before_restart} already delivered);"
            f" restarted and settled in {total:.1f}s"
        )
