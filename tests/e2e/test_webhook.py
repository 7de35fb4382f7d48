"""Deliveries are pushed to the case system's webhook, signed, retried through an outage."""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest
from aiohttp import web

from agent.cli import main as agent_main
from agent.config import WebhookSettings
from agent.webhook import SIGNATURE_HEADER, verify_signature
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import AgentHandle, agent_settings, free_port

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

SECRET = "synthetic-webhook-secret"


class FlakyCaseSystem:
    """Answers 503 to the first ``outage`` POSTs, then 200; records what it accepted."""

    def __init__(self, outage: int) -> None:
        self.outage = outage
        self.calls = 0
        self.accepted: list[str] = []
        self.bad_signatures = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls += 1
        if not verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.calls <= self.outage:
            return web.Response(status=503)
        self.accepted.append(json.loads(body)["delivery"]["id"])
        return web.Response(status=204)


class TestWebhookPush:
    async def test_every_delivery_reaches_the_webhook_once_despite_an_outage(
        self, live_federation: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """5 referrals, webhook down for the first 3 attempts: all 5 pushed, signed, in the end."""
        case_system = FlakyCaseSystem(outage=3)
        app = web.Application()
        app.router.add_post("/hook", case_system.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        fed = live_federation
        hook = WebhookSettings(
            url=f"http://127.0.0.1:{port}/hook", secret=SECRET, max_backoff_seconds=0.2
        )
        recipient = agent_settings(fed, "assist").model_copy(update={"webhook": hook})
        try:
            async with aiohttp.ClientSession() as session:
                sender = AgentHandle(
                    agent_settings(fed, "police-scotland"),
                    fed.agency("police-scotland").api_token,
                    session,
                )
                receiver = AgentHandle(recipient, fed.agency("assist").api_token, session)
                await sender.start()
                await receiver.start()
                try:
                    ids = []
                    for seed in range(5):
                        payload = generate_referral(
                            "police_concern", random.Random(seed), risk_level="high"
                        )
                        status, body = await sender.post(
                            "/v1/messages",
                            {"to": "assist", "isa": "isa-police-assist-advocacy",
                             "purpose": "advocacy_after_charge", "type": "police_concern",
                             "payload": payload},
                        )  # fmt: skip
                        assert status == 202, body
                        ids.append(body["id"])
                    for _ in range(1200):  # up to 60 s on a loaded machine
                        if len(set(case_system.accepted)) == len(ids):
                            break
                        await asyncio.sleep(0.05)
                    status, page = await receiver.get("/v1/inbox?after=0&limit=100")
                finally:
                    await receiver.shutdown()
                    await sender.shutdown()
        finally:
            await runner.cleanup()
        assert sorted(set(case_system.accepted)) == sorted(ids)
        assert len(case_system.accepted) == len(ids)  # no doubles in a clean run
        assert case_system.bad_signatures == 0
        assert case_system.calls >= len(ids) + 3  # the outage was really retried
        assert status == 200
        assert page["items"] == []  # pushed deliveries count as acknowledged
        capsys.readouterr()
        config = str(fed.agency("assist").config)
        assert await asyncio.to_thread(agent_main, ["audit", "export", "--config", config]) == 0
        entries = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        handed_over = {
            (e["action"], e["actor"]) for e in entries if e["action"] in {"deliver", "ack"}
        }
        assert handed_over == {("deliver", "webhook"), ("ack", "webhook")}  # s62: who consulted
