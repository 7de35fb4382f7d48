"""A medium-risk MARAC referral goes to review and is approved by a second person, on a real
RabbitMQ with real agents (issue 17.1, 17.3); a returned one is never sent."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import AgentHandle, leaf_paths, running_agents

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SENDER, COORDINATOR = "council-sw", "marac-coordinator"
WORKER = {"X-Actor-Id": "SYN-sw-worker-1", "X-Actor-Role": "practitioner"}
REVIEWER = {"X-Actor-Id": "SYN-sw-manager-2", "X-Actor-Role": "marac_reviewer"}


def medium_referral(seed: int) -> dict[str, Any]:
    payload = generate_referral("marac_referral", random.Random(seed), risk_level="medium")
    return {"to": COORDINATOR, "isa": "isa-marac-referrals", "purpose": "marac_risk_management",
            "type": "marac_referral", "payload": payload}  # fmt: skip


async def call(agent: AgentHandle, method: str, path: str, body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:  # fmt: skip
    """One API call as the case system, with actor headers."""
    async with agent.session.request(
        method, agent.url + path, json=body, headers={**agent.headers, **headers}
    ) as response:
        return response.status, await response.json(content_type=None)


async def events(agent: AgentHandle) -> list[dict[str, Any]]:
    status, page = await agent.get("/v1/events?after=0&limit=500")
    assert status == 200, page
    return list(page["items"])


async def wait_for_event(
    agent: AgentHandle, kind: str, message_id: str, within: float = 20
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not any(
        e["event"] == kind and e["message_id"] == message_id for e in await events(agent)
    ):
        assert asyncio.get_running_loop().time() < deadline, f"no {kind} event for {message_id}"
        await asyncio.sleep(0.05)


class TestReviewOnRealAgents:
    async def test_approved_by_a_second_person_is_delivered_and_a_returned_one_never_is(
        self, live_federation: DevFederation
    ) -> None:
        """Held (202 review_pending); the submitter's approval refused (403); a second person's
        approval sends it, delivered; the feed shows review_pending -> review_approved ->
        delivered; a returned referral never reaches the coordinator's inbox."""
        async with running_agents(live_federation, SENDER, COORDINATOR) as agents:
            sender, coordinator = agents[SENDER], agents[COORDINATOR]
            status, held = await call(sender, "POST", "/v1/messages", medium_referral(1), WORKER)
            assert (status, held["status"]) == (202, "review_pending"), held
            status, other = await call(sender, "POST", "/v1/messages", medium_referral(2), WORKER)
            assert (status, other["status"]) == (202, "review_pending"), other

            own = {**REVIEWER, "X-Actor-Id": WORKER["X-Actor-Id"]}
            why = {"justification": "SYN: professional judgement, escalating pattern"}
            status, refused = await call(
                sender, "POST", f"/v1/reviews/{held['id']}/approve", why, own
            )
            assert (status, refused["type"]) == (403, "urn:isa-relay:problem:own-submission")

            returned = {"reason": "SYN: speak to the victim about agreement first"}
            status, back = await call(
                sender, "POST", f"/v1/reviews/{other['id']}/return", returned, REVIEWER
            )
            assert (status, back["status"], back["message_id"]) == (200, "returned", None)

            status, approved = await call(
                sender, "POST", f"/v1/reviews/{held['id']}/approve", why, REVIEWER
            )
            assert (status, approved["status"]) == (200, "approved"), approved
            message_id = approved["message_id"]
            body = await sender.wait_status(message_id, {"delivered"})
            assert (body["receipt"]["status"], body["receipt"]["verified"]) == ("delivered", True)

            [item] = await coordinator.drain_inbox(1)
            assert item["id"] == message_id
            assert leaf_paths(item["payload"]) == set(approved["shared_fields"])
            assert leaf_paths(item["payload"]) == set(held["shared_fields"])

            await wait_for_event(sender, "delivered", message_id)
            feed = [(e["event"], e["review_id"], e["message_id"]) for e in await events(sender)]
            mine = [f for f in feed if held["id"] in (f[1],) or f[2] == message_id]
            assert mine == [
                ("review_pending", held["id"], None),
                ("review_approved", held["id"], message_id),
                ("delivered", None, message_id),
            ]
            assert ("review_returned", other["id"], None) in feed

            await asyncio.sleep(1.0)  # the relay would have sent anything queued by now
            status, page = await coordinator.get("/v1/inbox?after=0&limit=500")
            assert status == 200
            assert page["items"] == []  # the approved one was acked; nothing else ever came
            status, review = await sender.get(f"/v1/reviews/{other['id']}")
            assert (review["status"], review["message_id"]) == ("returned", None)
