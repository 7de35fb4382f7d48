"""A RabbitMQ restart mid-stream: the agents keep going once the broker is back, and every
message accepted with 202 reaches the recipient's case system exactly once.

The node is one the test owns (its own ports and data); it is stopped cleanly and started again
with the same data while the case system keeps submitting at a steady rate.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.devfed import DevFederation
from tests.faults.conftest import Report
from tests.faults.tally import RECIPIENT, SENDER, CaseSystem, Timer, read_inbox, referrals, tally
from tests.support.cluster import ClusterNode, RabbitCluster
from tests.support.federation import running_agents
from tests.support.processes import wait_all_status

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

COUNT, RATE, FAULT_AT = 300, 20.0, 60


def restart(node: ClusterNode, accepted: list[str], seen: list[int]) -> None:
    """Stop and start ``node``; note how many were accepted when it went down and came back."""
    node.stop()
    seen.append(len(accepted))
    node.start()
    node.await_startup()
    seen.append(len(accepted))


class TestBrokerRestart:
    async def test_node_restarted_mid_stream_every_accepted_message_delivered_once(
        self, owned_node: RabbitCluster, owned_federation: DevFederation, fault_report: Report
    ) -> None:
        """The only node restarts after 60 of 300 submissions: each accepted id arrives once."""
        timer, node = Timer(), owned_node.nodes[0]
        restarting: list[asyncio.Task[None]] = []
        seen: list[int] = []

        def restart_at(accepted: int) -> None:
            if accepted == FAULT_AT:
                work = asyncio.to_thread(restart, node, case.accepted, seen)
                restarting.append(asyncio.create_task(work))

        async with running_agents(owned_federation, SENDER, RECIPIENT) as agents:
            case = CaseSystem(agents[SENDER], rate=RATE, on_accepted=restart_at)
            accepted = await case.submit_all(referrals(COUNT, "restart"))
            await restarting[0]
            received = await read_inbox(agents[RECIPIENT], len(accepted), within=90)
            receipts = await wait_all_status(agents[SENDER], accepted, "delivered", within=60)
        result = tally(accepted, received)
        fault_report(
            "broker restart", result, timer.seconds(), f"down_at={seen[0]} up_at={seen[1]}"
        )
        assert FAULT_AT <= seen[0] < COUNT  # the node was down while submissions went on
        assert result.exactly_once, result
        assert result.sent == COUNT
        assert receipts == {"delivered": COUNT}
