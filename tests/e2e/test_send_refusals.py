"""A recipient whose key announcement has lapsed: the sender refuses at submit with a named 503
(issue 15.8), never 202 and never 403 ``denied``, and nothing reaches the recipient's queue."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from broker.devfed import DevFederation
from broker.fedstate import announcement_json, publish_manifest
from federation.keyfile import load_encryption_key, load_signing_key
from federation.keys import announce
from federation.synth import generate_referral
from federation.topology import inbox_queue
from tests.support.federation import running_agents, vhost_of
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]


def _lapse_announcements(fed: DevFederation, agency: str, now: datetime) -> None:
    """Replace ``agency``'s announcements by one of its key that lapsed a day ago, and publish
    the next manifest (valid now): as if nobody had announced its rotated key for 30 days."""
    home, folder = fed.layout.agency_dir(agency), fed.layout.announcements(agency)
    signing = load_signing_key((home / "keys" / "signing.key").read_bytes(), mode=0o600)
    [key_file] = (home / "keys" / "encryption").glob("*.key")
    public = load_encryption_key(key_file.read_bytes(), mode=0o600).public
    for path in folder.glob("*.json"):
        path.unlink()
    note = announce(
        signing, agency=agency, public_key=public,
        not_before=now - timedelta(days=31), not_after=now - timedelta(days=1),
    )  # fmt: skip
    (folder / f"{note.kid}.json").write_bytes(announcement_json(note))
    publish_manifest(fed.layout, now)


class TestLapsedRecipientKey:
    async def test_submit_is_refused_by_name_and_nothing_reaches_the_recipient(
        self, live_federation: DevFederation, rabbit_server: RabbitServer
    ) -> None:
        """503 recipient-key-unavailable with Retry-After, empty outbox, empty recipient queue."""
        _lapse_announcements(live_federation, "assist", datetime.now(UTC))
        payload = generate_referral("police_concern", random.Random(5), risk_level="high")
        body = {
            "to": "assist", "isa": "isa-police-assist-advocacy",
            "purpose": "advocacy_after_charge", "type": "police_concern", "payload": payload,
        }  # fmt: skip
        async with running_agents(live_federation, "police-scotland") as agents:
            police = agents["police-scotland"]
            async with police.session.post(
                police.url + "/v1/messages", json=body, headers=police.headers
            ) as response:
                status, retry = response.status, response.headers.get("Retry-After")
                problem = await response.json(content_type=None)
            _, health = await police.get("/healthz")
            _, ready = await police.get("/readyz")
        assert (status, problem["type"]) == (503, "urn:isa-relay:problem:recipient-key-unavailable")
        assert int(retry or 0) > 0
        assert health["outbox_depth"] == 0
        assert "assist" in [r["agency"] for r in health["unreachable_recipients"]]
        assert ready["status"] == "degraded"
        assert _peek(rabbit_server, vhost_of(live_federation), inbox_queue("assist")) == []


def _peek(server: RabbitServer, vhost: str, queue: str) -> list[object]:
    """Up to 10 messages waiting in ``queue``, requeued as they were (the management API)."""
    got = server.run(
        lambda client: client.request(
            "POST", "queues", vhost, queue, "get",
            body={"count": 10, "ackmode": "reject_requeue_true", "encoding": "auto"},
        )
    )  # fmt: skip
    return list(got or [])
