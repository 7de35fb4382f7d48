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
from tests.support.federation import AgentHandle, agent_settings
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


async def assert_delivered_exactly_once(
    sender: AgentHandle, recipient: AgentHandle, accepted: list[str], within: float = 60
) -> None:
    items = await recipient.drain_inbox(len(accepted), within=within)
    received = [item["id"] for item in items]
    assert duplicates(received) == []
    assert sorted(received) == sorted(accepted)
    statuses = await wait_all_status(sender, accepted, "delivered", within=within)
    assert statuses == {"delivered": len(accepted)}
    status, page = await recipient.get("/v1/inbox?after=0&limit=10")
    assert (status, page["items"]) == (200, [])  # nothing further turned up


class TestRecipientOffline:
    async def test_stopped_while_1000_are_sent_then_started_all_delivered_exactly_once(
        self, isolated_federation: DevFederation
    ) -> None:
        """1,000 accepted while the recipient stops mid-stream: after restart, each once."""
        bodies = referrals(1000, "offline")
        async with aiohttp.ClientSession() as session:
            fed, token = isolated_federation, isolated_federation.agency
            sender = AgentHandle(agent_settings(fed, SENDER), token(SENDER).api_token, session)
            recipient = AgentHandle(
                agent_settings(fed, RECIPIENT), token(RECIPIENT).api_token, session
            )
            await sender.start()
            await recipient.start()
            try:
                started = time.perf_counter()
                stopping: asyncio.Task[None] | None = None

                def stop_recipient_at(count: int) -> None:
                    nonlocal stopping
                    if count == 200:  # the recipient goes away while the rest are sent
                        stopping = asyncio.create_task(recipient.shutdown())

                accepted = await submit_many(sender, bodies, on_accepted=stop_recipient_at)
                assert stopping is not None
                await stopping
                submitted = time.perf_counter() - started
                await outbox_empty(sender)
                await recipient.start()
                await assert_delivered_exactly_once(sender, recipient, accepted)
                total = time.perf_counter() - started
            finally:
                await recipient.shutdown()
                await sender.shutdown()
        assert len(accepted) == 1000
        print(f"\n1000 messages: submitted in {submitted:.1f}s, all delivered in {total:.1f}s")


class TestSenderCrash:
    async def test_sigkilled_after_a_burst_of_202s_every_accepted_message_delivered_once(
        self, isolated_federation: DevFederation
    ) -> None:
        """SIGKILL the sender process right after its last 202; restart: each accepted id once."""
        bodies = referrals(300, "crash")
        async with aiohttp.ClientSession() as session:
            fed = isolated_federation
            sender = ProcessAgent.of(fed, SENDER, session)
            recipient = AgentHandle(
                agent_settings(fed, RECIPIENT), fed.agency(RECIPIENT).api_token, session
            )
            await sender.start()
            await recipient.start()
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
                await sender.kill()
                await recipient.shutdown()
        assert len(accepted) == 300
        print(
            f"\nsender SIGKILLed after 300 x 202 ({before_restart} already delivered);"
            f" restarted and settled in {total:.1f}s"
        )
