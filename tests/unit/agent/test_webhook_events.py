"""Status events pushed to the webhook (agent.webhook rule 7): signed, in order, retried, once
each, from the store's unpushed events (the in-memory store holds the same contract)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.api_models import StatusEventView
from agent.reviews import webhook_event
from agent.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Backoff,
    WebhookPusher,
    verify_signature,
)
from tests.support.memory_store import MemoryStore
from tests.unit.agent.conftest import NOW, enqueue

SECRET = "syn-webhook-secret"


@dataclass
class CaseSystem:
    """Answers the scripted statuses (then 204) and keeps what it was sent."""

    script: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.script.pop(0) if self.script else 204)

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.received]


@dataclass
class Rig:
    case_system: CaseSystem
    store: MemoryStore
    pusher: WebhookPusher
    sleeps: list[float]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    case_system, store, sleeps = CaseSystem(), MemoryStore(), []
    app = web.Application()
    app.router.add_post("/hook", case_system.handle)

    async def pending(limit: int) -> list[StatusEventView]:
        return [webhook_event(e) for e in await store.unpushed_events(limit)]

    async def pushed(event_id: str) -> None:
        await store.mark_event_pushed(event_id, NOW)

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        pusher = WebhookPusher(
            str(server.make_url("/hook")), SECRET, session, pending, pushed,
            backoff=Backoff(initial=1, maximum=4), clock=lambda: NOW, sleep=no_sleep,
            poll_seconds=60,
        )  # fmt: skip
        yield Rig(case_system, store, pusher, sleeps)


async def two_events(store: MemoryStore) -> None:
    """A delivered and an expired message of ours: two status events."""
    await enqueue(store, "m-1")
    await store.record_receipt(envelope_id="m-1", frame=b"IRR1", status="delivered", reason="",
                               at=NOW)  # fmt: skip
    await enqueue(store, "m-2", ttl=timedelta(hours=1))
    await store.expire_overdue(NOW + timedelta(hours=2))


class TestStatusEventPush:
    async def test_each_event_is_pushed_signed_in_order(self, rig: Rig) -> None:
        """Two events: two signed POSTs, event 'status', delivered then expired."""
        await two_events(rig.store)
        assert await rig.pusher.run_once() == 2
        bodies = rig.case_system.bodies()
        assert [b["event"] for b in bodies] == ["status", "status"]
        assert [b["status"]["event"] for b in bodies] == ["delivered", "expired"]  # type: ignore[index]
        for headers, body in rig.case_system.received:
            assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
            assert headers[DELIVERY_HEADER] == json.loads(body)["status"]["id"]

    async def test_a_pushed_event_is_not_pushed_again(self, rig: Rig) -> None:
        """Once the webhook took them, the next pass pushes nothing; the feed keeps them."""
        await two_events(rig.store)
        await rig.pusher.run_once()
        assert await rig.pusher.run_once() == 0
        assert len(rig.case_system.received) == 2
        assert len(await rig.store.events_page(0, 10)) == 2

    async def test_a_refused_push_is_retried_until_taken(self, rig: Rig) -> None:
        """503 then 500, then 204: the same event three times, with backoff; then the next."""
        await two_events(rig.store)
        rig.case_system.script = [503, 500]
        await rig.pusher.run_once()
        ids = [json.loads(b)["status"]["id"] for _, b in rig.case_system.received]
        assert ids[0] == ids[1] == ids[2] != ids[3]
        assert rig.sleeps == [1.0, 2.0]

    async def test_the_body_holds_no_payload_value(self, rig: Rig) -> None:
        """Only ids, agencies, the ISA, purpose, type and reason travel."""
        await two_events(rig.store)
        await rig.pusher.run_once()
        status = rig.case_system.bodies()[0]["status"]
        assert set(status) == {  # type: ignore[arg-type]
            "cursor", "id", "event", "at", "client", "message_id", "review_id", "to", "isa",
            "purpose", "type", "reason",
        }  # fmt: skip
