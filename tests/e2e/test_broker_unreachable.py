"""An agent whose broker is unreachable still serves its API and keeps what it accepts."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest

from agent.config import Settings
from agent.runtime import run_agent
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import agent_settings, free_port

pytestmark = [pytest.mark.rabbitmq]


class TestBrokerUnreachable:
    async def test_submissions_are_accepted_into_the_outbox_while_the_broker_is_down(
        self, live_federation: DevFederation
    ) -> None:
        """No broker: /healthz says degraded, a referral still gets 202 and stays queued."""
        settings = agent_settings(live_federation, "police-scotland")
        dead = f"amqp://127.0.0.1:{free_port()}/nowhere"
        settings = settings.model_copy(
            update={"broker": settings.broker.model_copy(update={"urls": (dead,)})}
        )
        token = live_federation.agency("police-scotland").api_token
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://{settings.api.listen}"
        stop = asyncio.Event()
        task = asyncio.create_task(run_agent(settings, stop=stop))
        try:
            async with aiohttp.ClientSession() as session:
                health = await _poll_health(session, base)
                payload = generate_referral("police_concern", random.Random(7), risk_level="high")
                body = {
                    "to": "assist", "isa": "isa-police-assist-advocacy",
                    "purpose": "advocacy_after_charge", "type": "police_concern",
                    "payload": payload,
                }  # fmt: skip
                async with session.post(f"{base}/v1/messages", json=body, headers=headers) as r:
                    accepted = (r.status, await r.json())
                message_id = accepted[1]["id"]
                async with session.get(f"{base}/v1/messages/{message_id}", headers=headers) as r:
                    status = await r.json()
        finally:
            stop.set()
            await task
        assert health["status"] == "degraded"
        assert health["broker"] == {"connected": False}
        assert accepted[0] == 202
        assert status["status"] == "queued"

    async def test_liveness_stays_200_and_readiness_is_degraded_while_the_broker_is_down(
        self, live_federation: DevFederation
    ) -> None:
        """No broker: /livez 200 (no restart), /readyz 200 degraded naming the broker."""
        settings = _without_broker(agent_settings(live_federation, "police-scotland"))
        base = f"http://{settings.api.listen}"
        stop = asyncio.Event()
        task = asyncio.create_task(run_agent(settings, stop=stop))
        try:
            async with aiohttp.ClientSession() as session:
                await _poll_health(session, base)
                async with session.get(f"{base}/livez") as r:
                    live = (r.status, await r.json())
                async with session.get(f"{base}/readyz") as r:
                    ready = (r.status, await r.json())
                async with session.get(f"{base}/healthz") as r:
                    healthz = r.status
        finally:
            stop.set()
            await task
        assert live == (200, {"status": "alive"})
        assert (ready[0], ready[1]["status"], ready[1]["missing"]) == (200, "degraded", [])
        assert [d["check"] for d in ready[1]["degraded"]] == ["broker"]
        assert healthz == 503  # /healthz keeps its old meaning (200 only when ok)


def _without_broker(settings: Settings) -> Settings:
    dead = f"amqp://127.0.0.1:{free_port()}/nowhere"
    return settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"urls": (dead,)})}
    )


async def _poll_health(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
    for _ in range(200):
        try:
            async with session.get(f"{base}/healthz") as response:
                body: dict[str, object] = await response.json()
                return body
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.05)
    raise AssertionError("the API never came up")
