"""Webhook push: signed with HMAC-SHA256, retried with capped backoff, never dropped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.api_models import InboxItem, WebhookDelivery
from agent.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    WebhookPusher,
    sign,
    verify_signature,
)
from federation.errors import ConfigError
from tests.unit.agent.api.fake_service import synthetic_delivery

SECRET = "syn-webhook-secret"
NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@dataclass
class CaseSystem:
    """A webhook receiver answering a scripted list of statuses (then 200)."""

    script: list[int | str] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        self.changed.set()
        step = self.script.pop(0) if self.script else 200
        if step == "hang":
            await asyncio.sleep(1)
        if step == "redirect":
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=step if isinstance(step, int) else 200)

    def delivery_ids(self) -> list[str]:
        return [json.loads(body)["delivery"]["id"] for _, body in self.received]


@dataclass
class Inbox:
    """The store's side: pending deliveries and the ids marked delivered."""

    pending: list[InboxItem]
    marked: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def fetch_pending(self, limit: int) -> Sequence[InboxItem]:
        return [i for i in self.pending if i.id not in self.marked][:limit]

    async def mark_delivered(self, id: str) -> None:
        self.marked.append(id)
        self.changed.set()


async def until(changed: asyncio.Event, condition: Callable[[], bool]) -> None:
    """Wait (at most 2 s) until ``condition`` holds, re-checking each time ``changed`` fires."""
    async with asyncio.timeout(2):
        while not condition():
            changed.clear()
            await changed.wait()


@dataclass
class Harness:
    case_system: CaseSystem
    inbox: Inbox
    pusher: WebhookPusher
    sleeps: list[float]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    case_system = CaseSystem()
    app = web.Application()
    app.router.add_post("/hook", case_system.handle)
    inbox = Inbox([synthetic_delivery(1), synthetic_delivery(2)])
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        pusher = WebhookPusher(
            str(server.make_url("/hook")),
            SECRET,
            session,
            inbox.fetch_pending,
            inbox.mark_delivered,
            backoff=Backoff(initial=1, factor=2, maximum=8),
            clock=lambda: NOW,
            sleep=fake_sleep,
            timeout_seconds=0.2,
            poll_seconds=60,
        )
        yield Harness(case_system, inbox, pusher, sleeps)


class TestSignature:
    async def test_the_receiver_verifies_the_body_with_the_shared_secret(
        self, harness: Harness
    ) -> None:
        """X-ISA-Relay-Signature is sha256=<hex HMAC of the exact body bytes>."""
        await harness.pusher.run_once()
        headers, body = harness.case_system.received[0]
        assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
        assert headers[SIGNATURE_HEADER].startswith("sha256=")

    async def test_the_timestamp_is_in_the_header_and_the_signed_body(
        self, harness: Harness
    ) -> None:
        """A receiver can refuse stale replays: the time is covered by the signature."""
        await harness.pusher.run_once()
        headers, body = harness.case_system.received[0]
        assert headers[TIMESTAMP_HEADER] == json.loads(body)["sent_at"] == "2026-01-05T09:30:00Z"

    async def test_the_delivery_id_header_lets_the_receiver_deduplicate(
        self, harness: Harness
    ) -> None:
        """Each POST names its delivery id."""
        await harness.pusher.run_once()
        headers, body = harness.case_system.received[0]
        assert headers[DELIVERY_HEADER] == json.loads(body)["delivery"]["id"]

    async def test_the_body_is_the_documented_webhook_delivery(self, harness: Harness) -> None:
        """The body parses as WebhookDelivery (the OpenAPI document's webhook schema)."""
        await harness.pusher.run_once()
        _, body = harness.case_system.received[0]
        assert WebhookDelivery.model_validate_json(body).delivery == synthetic_delivery(1)

    def test_a_tampered_body_fails_verification(self) -> None:
        """One changed byte and the signature no longer verifies."""
        header = sign(SECRET, b'{"risk":"high"}')
        assert not verify_signature(SECRET, b'{"risk":"low"}', header)

    def test_another_secret_fails_verification(self) -> None:
        """Only the holder of the shared secret can sign."""
        assert not verify_signature("other", b"{}", sign(SECRET, b"{}"))

    def test_a_secret_is_required(self) -> None:
        """Unsigned deliveries are never sent."""
        with pytest.raises(ConfigError):
            WebhookPusher("http://127.0.0.1:1/", "", None, None, None)  # type: ignore[arg-type]


class TestRetries:
    async def test_failures_are_retried_until_a_2xx(self, harness: Harness) -> None:
        """500, 503, 404 then 200: four attempts, one mark, backoff 1, 2, 4 seconds."""
        harness.case_system.script = [500, 503, 404]
        attempts = await harness.pusher.deliver(synthetic_delivery(1))
        assert attempts == 4
        assert harness.sleeps == [1, 2, 4]
        assert harness.inbox.marked == [synthetic_delivery(1).id]

    async def test_backoff_is_capped(self, harness: Harness) -> None:
        """However long the outage, no wait exceeds the cap."""
        harness.case_system.script = [500] * 6
        await harness.pusher.deliver(synthetic_delivery(1))
        assert harness.sleeps == [1, 2, 4, 8, 8, 8]

    async def test_a_timeout_is_retried(self, harness: Harness) -> None:
        """A receiver that hangs past the timeout gets the delivery again."""
        harness.case_system.script = ["hang"]
        assert await harness.pusher.deliver(synthetic_delivery(1)) == 2

    async def test_redirects_are_not_followed(self, harness: Harness) -> None:
        """A 3xx is a failure: personal data goes only to the configured URL."""
        harness.case_system.script = ["redirect"]
        assert await harness.pusher.deliver(synthetic_delivery(1)) == 2
        assert len(harness.case_system.received) == 2

    def test_backoff_doubles_from_the_initial_delay(self) -> None:
        """The default schedule is 1, 2, 4, ... seconds, capped at 300."""
        assert [Backoff().delay(n) for n in (1, 2, 3, 10, 1000)] == [1, 2, 4, 300, 300]


class TestNothingDropped:
    async def test_every_pending_delivery_arrives_in_order(self, harness: Harness) -> None:
        """A failing first delivery holds back the second; both arrive, each marked once."""
        harness.case_system.script = [500, 500]
        assert await harness.pusher.run_once() == 2
        first, second = synthetic_delivery(1).id, synthetic_delivery(2).id
        assert harness.case_system.delivery_ids() == [first, first, first, second]
        assert harness.inbox.marked == [first, second]

    async def test_an_undelivered_item_is_never_marked(self, harness: Harness) -> None:
        """While the webhook keeps failing, the delivery stays pending."""
        harness.case_system.script = [500] * 100
        task = asyncio.create_task(harness.pusher.deliver(synthetic_delivery(1)))
        await until(harness.case_system.changed, lambda: len(harness.case_system.received) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert harness.inbox.marked == []

    async def test_run_pushes_new_deliveries_when_notified(self, harness: Harness) -> None:
        """run() drains the inbox, then a notify() pushes a new arrival without a poll wait."""
        task = asyncio.create_task(harness.pusher.run())
        await until(harness.inbox.changed, lambda: len(harness.inbox.marked) >= 2)
        harness.inbox.pending.append(synthetic_delivery(3))
        harness.pusher.notify()
        await until(harness.inbox.changed, lambda: len(harness.inbox.marked) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert harness.inbox.marked == [synthetic_delivery(n).id for n in (1, 2, 3)]
