"""A three-node RabbitMQ cluster loses the node leading the recipient's quorum queue mid-stream:
nothing is lost or doubled.

The nodes are the test's own (``tests/support/cluster.py``), on their own ports. Both agents get
all three AMQP URLs, the leader's first, so the crash takes away the queue's leader AND the
node the agents are connected to: they must fail over to another node while the queue elects a
new leader from its two remaining replicas.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp
import pytest

from agent.config import Settings
from broker.devfed import DevFederation
from federation.topology import inbox_queue
from tests.faults.conftest import Report
from tests.faults.tally import RECIPIENT, SENDER, CaseSystem, Timer, read_inbox, referrals, tally
from tests.support.cluster import ClusterNode, RabbitCluster
from tests.support.federation import AgentHandle, agent_settings, vhost_of
from tests.support.processes import wait_all_status

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

COUNT, RATE, FAULT_AT = 300, 25.0, 60


def cluster_settings(fed: DevFederation, agency: str, nodes: list[ClusterNode]) -> Settings:
    """``agency``'s settings with every node's AMQP URL, in the order given."""
    settings = agent_settings(fed, agency)
    urls = tuple(node.amqp_url(vhost_of(fed)) for node in nodes)
    return settings.model_copy(update={"broker": settings.broker.model_copy(update={"urls": urls})})


def crash(node: ClusterNode, accepted: list[str], seen: list[int]) -> None:
    node.kill()
    seen.append(len(accepted))


class TestQueueLeaderLoss:
    async def test_leader_node_killed_mid_stream_every_accepted_message_delivered_once(
        self, cluster: RabbitCluster, cluster_federation: DevFederation, fault_report: Report
    ) -> None:
        """SIGKILL the recipient queue's leader after 60 of 300: each accepted id arrives once."""
        timer, fed = Timer(), cluster_federation
        vhost, queue = vhost_of(fed), inbox_queue(RECIPIENT)
        info = cluster.api("GET", f"queues/{quote(vhost, safe='')}/{queue}")
        assert (info["type"], len(info["members"])) == ("quorum", 3)
        leader = cluster.queue_leader(vhost, queue)
        nodes = [leader, *(n for n in cluster.nodes if n is not leader)]
        crashing: list[asyncio.Task[None]] = []
        seen: list[int] = []

        def crash_at(count: int) -> None:
            if count == FAULT_AT:
                crashing.append(
                    asyncio.create_task(asyncio.to_thread(crash, leader, case.accepted, seen))
                )

        async with aiohttp.ClientSession() as session:
            sender = AgentHandle(
                cluster_settings(fed, SENDER, nodes), fed.agency(SENDER).api_token, session
            )
            recipient = AgentHandle(
                cluster_settings(fed, RECIPIENT, nodes), fed.agency(RECIPIENT).api_token, session
            )
            await sender.start()
            await recipient.start()
            try:
                case = CaseSystem(sender, rate=RATE, on_accepted=crash_at)
                accepted = await case.submit_all(referrals(COUNT, "leader"))
                await crashing[0]
                received = await read_inbox(recipient, len(accepted), within=90)
                receipts = await wait_all_status(sender, accepted, "delivered", within=60)
            finally:
                await recipient.shutdown()
                await sender.shutdown()
        new_leader = cluster.queue_leader(vhost, queue)
        result = tally(accepted, received)
        fault_report("cluster leader loss", result, timer.seconds(),
                     f"killed={leader.name} at={seen[0]} new_leader={new_leader.name}")  # fmt: skip
        assert new_leader is not leader
        assert FAULT_AT <= seen[0] < COUNT
        assert result.exactly_once, result
        assert receipts == {"delivered": COUNT}
