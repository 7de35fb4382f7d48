"""Agents SIGKILLed mid-stream and restarted: every message accepted with 202 reaches the
recipient's case system exactly once.

The agents are real processes (``isa-agent run``); SIGKILL gives them no chance to tidy up, so
whatever was in flight (an HTTP submission, a publish awaiting its confirm, a delivery stored
but not yet acked) is exactly what restart and the protocol's dedupe must get right. The case
system submits at a steady rate and, while the sender is down, resubmits with the same
idempotency key until a 202 (``tests/faults/tally.py``).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from broker.devfed import DevFederation
from tests.faults.conftest import Report
from tests.faults.tally import RECIPIENT, SENDER, CaseSystem, Timer, read_inbox, referrals, tally
from tests.support.federation import AgentHandle, agent_settings
from tests.support.processes import ProcessAgent, wait_all_status

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

COUNT, RATE, FAULT_AT, DOWN_SECONDS = 300, 40.0, 100, 1.0


async def crash_and_restart(agent: ProcessAgent, accepted: list[str], seen: list[int]) -> None:
    """SIGKILL ``agent``, leave it down a moment, start it again; note the accepted count."""
    await agent.kill()
    seen.append(len(accepted))
    await asyncio.sleep(DOWN_SECONDS)
    await agent.start()
    seen.append(len(accepted))


async def stream_with_crash(
    sender: AgentHandle, victim: ProcessAgent, tag: str
) -> tuple[list[str], list[int], CaseSystem]:
    """Submit COUNT referrals; SIGKILL and restart ``victim`` once FAULT_AT were accepted."""
    crashing: list[asyncio.Task[None]] = []
    seen: list[int] = []

    def crash_at(count: int) -> None:
        if count == FAULT_AT:
            crashing.append(asyncio.create_task(crash_and_restart(victim, case.accepted, seen)))

    case = CaseSystem(sender, rate=RATE, on_accepted=crash_at)
    accepted = await case.submit_all(referrals(COUNT, tag))
    await crashing[0]
    return accepted, seen, case


def in_process(fed: DevFederation, agency: str, session: aiohttp.ClientSession) -> AgentHandle:
    return AgentHandle(agent_settings(fed, agency), fed.agency(agency).api_token, session)


class TestSenderCrash:
    async def test_sender_sigkilled_mid_stream_and_restarted_each_accepted_id_once(
        self, pair_federation: DevFederation, fault_report: Report
    ) -> None:
        """Sender SIGKILLed after 100 of 300 accepted, restarted: each accepted id arrives once."""
        timer, fed = Timer(), pair_federation
        async with aiohttp.ClientSession() as session:
            sender = ProcessAgent.of(fed, SENDER, session)
            recipient = in_process(fed, RECIPIENT, session)
            await sender.start()
            await recipient.start()
            try:
                accepted, seen, case = await stream_with_crash(sender, sender, "sender-kill")
                received = await read_inbox(recipient, len(accepted), within=60)
                receipts = await wait_all_status(sender, accepted, "delivered", within=60)
            finally:
                await sender.kill()
                await recipient.shutdown()
        result = tally(accepted, received)
        fault_report("sender SIGKILL", result, timer.seconds(),
                     f"killed_at={seen[0]} refused={case.answers['0']}")  # fmt: skip
        assert FAULT_AT <= seen[0] < COUNT
        assert case.answers["0"] > 0  # the case system really met the dead sender
        assert result.exactly_once, result
        assert receipts == {"delivered": COUNT}


class TestRecipientCrash:
    async def test_recipient_sigkilled_mid_stream_and_restarted_each_accepted_id_once(
        self, pair_federation: DevFederation, fault_report: Report
    ) -> None:
        """Recipient SIGKILLed after 100 of 300 accepted, restarted: each id arrives once."""
        timer, fed = Timer(), pair_federation
        async with aiohttp.ClientSession() as session:
            sender = in_process(fed, SENDER, session)
            recipient = ProcessAgent.of(fed, RECIPIENT, session)
            await sender.start()
            await recipient.start()
            try:
                accepted, seen, _ = await stream_with_crash(sender, recipient, "recipient-kill")
                received = await read_inbox(recipient, len(accepted), within=60)
                receipts = await wait_all_status(sender, accepted, "delivered", within=60)
            finally:
                await recipient.kill()
                await sender.shutdown()
        result = tally(accepted, received)
        fault_report("recipient SIGKILL", result, timer.seconds(), f"killed_at={seen[0]}")
        assert FAULT_AT <= seen[0] < COUNT
        assert result.exactly_once, result
        assert receipts == {"delivered": COUNT}
