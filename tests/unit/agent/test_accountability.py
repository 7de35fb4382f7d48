"""Who acted and why, in every audit entry (issue 18 points 1-2; DPA 2018 s62), on two real
in-process agents of the shipped ISAs (police-scotland sends MARAC referrals to the
marac-coordinator; the flow says ``log: dpa2018_s62``) behind the real local API.

Every API operation the app serves writes the person and the role it names into the audit log;
a call naming nobody is refused (``require_actor``) or recorded as ``system:<client>``; the
s62 flow refuses disclosures without a person and a reason either way; previews, status reads,
empty inbox pages and audit searches leave ``consult`` entries; a generalised field leaves an
``alter`` entry with its path and never its value; and the chain verifies after all of it.
All data is synthetic.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.actor import actor_headers
from agent.api import create_app
from agent.auth import ApiClient, hash_token
from agent.cli import main as agent_main
from agent.config import load_settings
from agent.openapi import OPERATIONS
from agent.runtime import Agent, open_agent
from agent.store import PayloadPurged
from agent.transport import Delivery
from broker.devfed import DevFederation, create_dev_federation
from federation.audit_chain import AuditEntry
from federation.synth import generate_referral

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SENDER, RECIPIENT = "police-scotland", "marac-coordinator"
#: Every party of isa-marac-referrals: the manifest carries an ISA only if it knows them all.
PARTIES = [SENDER, "council-sw", "health-board", "assist", "womens-aid", RECIPIENT]
TOKEN = "syn-token-accountability-000000000000000"
CLIENT = ApiClient(name="case-system", token_sha256=hash_token(TOKEN),
                   scopes=frozenset({"send", "receive", "admin"}))  # fmt: skip
#: Operations that authenticate nobody, so have no person to record: the probes and the
#: document. Any other operation must leave an entry naming the person who called it.
UNAUTHENTICATED = {"liveness", "readiness", "health", "openapi"}
Client = TestClient[web.Request, web.Application]


class FakeTransport:
    """Takes what the agents publish (the transport itself is tested on RabbitMQ)."""

    consuming = connected = True

    async def publish(self, to: str, frame: bytes, *, message_id: str, kind: str) -> None:
        return None


def referral(seed: int = 1, risk: str = "high") -> dict[str, Any]:
    payload = generate_referral("marac_referral", random.Random(seed), risk_level=risk)
    return {"to": RECIPIENT, "isa": "isa-marac-referrals", "purpose": "marac_risk_management",
            "type": "marac_referral", "payload": payload}  # fmt: skip


def person(
    name: str, why: str | None = "SYNTHETIC MARAC referral, high risk", role: str = "case_worker"
) -> dict[str, str]:
    """The headers naming synthetic person ``SYN-<name>`` (a staff id, never a name)."""
    return actor_headers(f"SYN-{name}", role, why)


@dataclass
class World:
    police: Agent
    marac: Agent
    fed: DevFederation

    def app(self, agent: Agent, *, require_actor: bool = True) -> web.Application:
        return create_app(agent.service(), [CLIENT], require_actor=require_actor)

    async def deliver_sent(self) -> list[str]:
        """Send what the police outbox holds (the relay's send entry) and store it at the
        marac-coordinator (its receive entry): the ids delivered."""
        due = await self.police.store.due_outgoing(NOW, 100)
        await self.police.relay().publish_due()
        for message in due:
            delivery = Delivery(body=message.frame, message_id=message.id, kind="envelope",
                                user_id=SENDER, redelivered=False, delivery_count=0)  # fmt: skip
            await self.marac.receiver()(delivery)
        return [m.id for m in due]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fed = create_dev_federation(
        tmp_path / "fed", policies=REPO / "policies", now=NOW, agencies=PARTIES,
        vhost="syn-unit-never-provisioned", user_prefix="",
    )  # fmt: skip
    async with AsyncExitStack() as stack:
        police, marac = [
            await stack.enter_async_context(
                open_agent(load_settings(fed.agency(a).config, {}), clock=lambda: NOW)
            )
            for a in (SENDER, RECIPIENT)
        ]
        for agent in (police, marac):
            stack.enter_context(agent.publisher.attached(FakeTransport()))
        yield World(police, marac, fed)


async def entries(agent: Agent) -> list[AuditEntry]:
    return await agent.audit.entries()  # type: ignore[attr-defined,no-any-return]


async def called(agent: Agent) -> list[AuditEntry]:
    """The entries API and CLI calls caused (not the agent's own, e.g. its manifest's)."""
    return [e for e in await entries(agent) if e.actor in (CLIENT.name, "cli")]


async def call(
    client: Client, method: str, path: str, headers: dict[str, str], body: Any = None
) -> Any:
    auth = {"Authorization": f"Bearer {TOKEN}", **headers}
    response = await client.request(method, path, json=body, headers=auth)
    text = await response.text()
    return response.status, (json.loads(text) if text and "json" in response.content_type
                             else text)  # fmt: skip


async def submitted(client: Client, name: str = "submitter", seed: int = 1) -> str:
    status, body = await call(client, "POST", "/v1/messages", person(name), referral(seed))
    assert status == 202, body
    return str(body["id"])


Recipe = Callable[[Client, Client, dict[str, str], dict[str, str]], Awaitable[tuple[int, Any]]]


async def _submit(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "POST", "/v1/messages", h, referral(7))


async def _preview(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "POST", "/v1/messages/preview", h, referral(8))


async def _status(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", f"/v1/messages/{ids['message']}", h)


async def _inbox(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(marac, "GET", "/v1/inbox?after=0&limit=10", h)


async def _ack(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(marac, "POST", f"/v1/inbox/{ids['message']}/ack", h)


async def _event(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    body = {"event": "case_closed"}
    return await call(marac, "POST", f"/v1/inbox/{ids['message']}/events", h, body)


async def _hold(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(marac, "PUT", f"/v1/inbox/{ids['message']}/hold", h)


async def _release(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(marac, "DELETE", f"/v1/inbox/{ids['message']}/hold", h)


async def _erase(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(marac, "POST", f"/v1/inbox/{ids['message']}/erase", h)


async def _reviews(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", "/v1/reviews?after=0&limit=10", h)


async def _review(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", f"/v1/reviews/{ids['review']}", h)


async def _narrow(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    _, view = await call(police, "GET", f"/v1/reviews/{ids['review']}", h)
    body = {"shared_fields": view["shared_fields"]}  # narrowing to the same set is allowed
    return await call(police, "POST", f"/v1/reviews/{ids['review']}/narrow", h, body)


async def _approve(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "POST", f"/v1/reviews/{ids['review']}/approve", h, {})


async def _return(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    body = {"reason": "SYNTHETIC: agreement not yet asked"}
    return await call(police, "POST", f"/v1/reviews/{ids['returned']}/return", h, body)


async def _events(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", "/v1/events?after=0&limit=10", h)


async def _isas(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", "/v1/isas", h)


async def _metrics(police: Client, marac: Client, ids: dict[str, str], h: dict[str, str]) -> Any:
    return await call(police, "GET", "/metrics", h)


#: How to call each authenticated operation (in this order), and which agent's log records it.
RECIPES: dict[str, tuple[Recipe, str]] = {
    "submitMessage": (_submit, SENDER),
    "previewMessage": (_preview, SENDER),
    "getMessage": (_status, SENDER),
    "listInbox": (_inbox, RECIPIENT),
    "ackDelivery": (_ack, RECIPIENT),
    "reportCaseEvent": (_event, RECIPIENT),
    "placeLegalHold": (_hold, RECIPIENT),
    "releaseLegalHold": (_release, RECIPIENT),
    "eraseDelivery": (_erase, RECIPIENT),
    "listReviews": (_reviews, SENDER),
    "getReview": (_review, SENDER),
    "narrowReview": (_narrow, SENDER),
    "approveReview": (_approve, SENDER),
    "returnReview": (_return, SENDER),
    "listEvents": (_events, SENDER),
    "listIsas": (_isas, SENDER),
    "metrics": (_metrics, SENDER),
}
#: The role each operation is called in where it is not case_worker: a review's acts need the
#: reviewer role the ISA names (marac_reviewer), and never the submitter.
ROLES = {"narrowReview": "marac_reviewer", "approveReview": "marac_reviewer",
         "returnReview": "marac_reviewer"}  # fmt: skip


async def held(client: Client, seed: int) -> str:
    """A medium-risk referral the ISA holds for review, submitted by SYN-submitter."""
    status, body = await call(client, "POST", "/v1/messages", person("submitter"),
                              referral(seed, "medium"))  # fmt: skip
    assert (status, body["status"]) == (202, "review_pending"), body
    return str(body["id"])


class TestEveryOperation:
    async def test_every_operation_records_the_person_and_the_role(self, world: World) -> None:
        """Walk the routes the app serves: each authenticated one, called once naming its own
        person, leaves an entry with that person, role and reason; the chain then verifies."""
        police_app, marac_app = world.app(world.police), world.app(world.marac)
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in police_app.router.routes()
            if route.resource is not None
        }
        documented = {(op.method, op.path): op.operation_id for op in OPERATIONS}
        assert served == set(documented), "a route the OpenAPI table does not know"
        walked = {documented[route] for route in served} - UNAUTHENTICATED
        assert walked == set(RECIPES), "an authenticated operation with no audit check"
        async with (
            TestClient(TestServer(police_app)) as police,
            TestClient(TestServer(marac_app)) as marac,
        ):
            ids = {"message": await submitted(police)}
            await world.deliver_sent()
            ids |= {"review": await held(police, 11), "returned": await held(police, 12)}
            for op_id, (recipe, _) in RECIPES.items():
                headers = person(op_id, role=ROLES.get(op_id, "case_worker"))
                status, body = await recipe(police, marac, ids, headers)
                assert 200 <= status < 300, (op_id, status, body)
        logs = {SENDER: await entries(world.police), RECIPIENT: await entries(world.marac)}
        for op_id, (_, agency) in RECIPES.items():
            mine = [e for e in logs[agency] if e.actor_id == f"SYN-{op_id}"]
            assert mine, f"{op_id} left no audit entry naming its person"
            assert {(e.v, e.actor_role, e.justification) for e in mine} == {
                (2, ROLES.get(op_id, "case_worker"), "SYNTHETIC MARAC referral, high risk")
            }
        for agent in (world.police, world.marac):
            assert await agent.audit.verify() is None  # type: ignore[attr-defined]

    async def test_every_entry_names_someone(self, world: World) -> None:
        """Entries of the agent's own work (send, receive, receipt) name a person or the
        system: none is without actor_id and actor_role."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            await submitted(police)
        await world.deliver_sent()
        for agent in (world.police, world.marac):
            found = await entries(agent)
            assert found
            assert all(e.actor_id and e.actor_role for e in found)


class TestNoPersonNamed:
    @pytest.mark.parametrize(
        "op", [op for op in OPERATIONS if op.actor in ("person", "justified", "always")],
        ids=lambda op: op.operation_id,
    )  # fmt: skip
    async def test_required_person_missing_is_400_and_records_nothing(
        self, world: World, op: Any
    ) -> None:
        """Under require_actor, each operation about messages without X-Actor-*: 400
        actor-required, before anything is stored or audited."""
        path = op.path.replace("{id}", "01900000-0000-7000-8000-000000000000")
        agent = world.police if op.scope == "send" else world.marac
        async with TestClient(TestServer(world.app(agent))) as client:
            body = referral() if op.body is not None else None
            status, problem = await call(client, op.method.upper(), path, {}, body)
        assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-required")
        assert "X-Actor-Id" in problem["detail"]
        assert await called(agent) == []

    @pytest.mark.parametrize(
        "op",
        [op for op in OPERATIONS if op.actor in ("justified", "always")],
        ids=lambda op: op.operation_id,
    )
    async def test_a_disclosure_without_a_reason_is_400(self, world: World, op: Any) -> None:
        """Submit, inbox, erasure and holds name a person but no X-Actor-Justification: 400
        justification-required."""
        path = op.path.replace("{id}", "01900000-0000-7000-8000-000000000000")
        agent = world.police if op.scope == "send" else world.marac
        async with TestClient(TestServer(world.app(agent))) as client:
            body = referral() if op.body is not None else None
            status, problem = await call(client, op.method.upper(), path, person("x", None),
                                         body)  # fmt: skip
        assert (status, problem["type"]) == (400, "urn:isa-relay:problem:justification-required")
        assert await world.police.store.outbox_depth() == 0

    @pytest.mark.parametrize(
        "op", [op for op in OPERATIONS if op.actor == "always"], ids=lambda op: op.operation_id
    )
    async def test_erasure_and_holds_need_a_person_even_without_require_actor(
        self, world: World, op: Any
    ) -> None:
        """require_actor off: an erasure or a hold naming nobody is still 400 actor-required."""
        path = op.path.replace("{id}", "01900000-0000-7000-8000-000000000000")
        async with TestClient(TestServer(world.app(world.marac, require_actor=False))) as client:
            status, problem = await call(client, op.method.upper(), path, {})
        assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-required")
        assert await called(world.marac) == []

    async def test_a_malformed_actor_is_400_and_not_echoed(self, world: World) -> None:
        """A name where the staff id goes: 400 actor-invalid; the value is not in the answer."""
        async with TestClient(TestServer(world.app(world.police))) as client:
            headers = {"X-Actor-Id": "Jane SYNTHETICA", "X-Actor-Role": "idva"}
            status, problem = await call(client, "GET", "/v1/isas", headers)
        assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-invalid")
        assert "SYNTHETICA" not in json.dumps(problem)

    async def test_without_require_actor_the_call_is_recorded_as_the_system(
        self, world: World
    ) -> None:
        """require_actor off: a status read naming nobody is recorded as system:case-system."""
        async with TestClient(TestServer(world.app(world.police, require_actor=False))) as client:
            message_id = await submitted(client)
            status, _ = await call(client, "GET", f"/v1/messages/{message_id}", {})
        assert status == 200
        reads = [e for e in await entries(world.police) if e.outcome == "message_status"]
        assert [(e.actor, e.actor_id, e.actor_role) for e in reads] == [
            ("case-system", "system:case-system", "system")
        ]

    async def test_the_isa_list_and_metrics_need_no_person(self, world: World) -> None:
        """Calls about the agent, not a message: recorded as the system even under
        require_actor (a Prometheus scrape names nobody)."""
        async with TestClient(TestServer(world.app(world.police))) as client:
            assert (await call(client, "GET", "/metrics", {}))[0] == 200
            assert (await call(client, "GET", "/v1/isas", {}))[0] == 200
        consults = [(e.outcome, e.actor_id) for e in await entries(world.police)]
        assert ("metrics", "system:case-system") in consults
        assert ("isa_list", "system:case-system") in consults


class TestS62Flow:
    async def test_a_submit_under_the_s62_flow_needs_a_person_even_without_require_actor(
        self, world: World
    ) -> None:
        """require_actor off, ISA flow log: dpa2018_s62, no X-Actor-*: 400 actor-required;
        nothing queued or audited."""
        async with TestClient(TestServer(world.app(world.police, require_actor=False))) as client:
            status, problem = await call(client, "POST", "/v1/messages", {}, referral())
            reasonless = await call(client, "POST", "/v1/messages", person("x", None), referral())
        assert (status, problem["type"]) == (400, "urn:isa-relay:problem:actor-required")
        assert "isa-marac-referrals" in problem["detail"]
        assert reasonless[1]["type"] == "urn:isa-relay:problem:justification-required"
        assert await world.police.store.outbox_depth() == 0
        assert await called(world.police) == []

    async def test_a_referral_held_for_review_needs_its_submitter_but_no_reason_yet(
        self, world: World
    ) -> None:
        """require_actor off, s62 flow, medium risk (REVIEW): held with the submitter named and
        no X-Actor-Justification (nothing is disclosed until a reviewer approves it with a
        reason); naming nobody is 400 actor-required and holds nothing."""
        async with TestClient(TestServer(world.app(world.police, require_actor=False))) as client:
            nobody = await call(client, "POST", "/v1/messages", {}, referral(5, "medium"))
            status, body = await call(client, "POST", "/v1/messages", person("x", None),
                                      referral(5, "medium"))  # fmt: skip
        assert (nobody[0], nobody[1]["type"]) == (400, "urn:isa-relay:problem:actor-required")
        assert (status, body["status"]) == (202, "review_pending")
        assert await world.police.store.outbox_depth() == 0

    async def test_reading_an_s62_delivery_needs_a_person_and_a_reason(self, world: World) -> None:
        """require_actor off: an inbox page holding a delivery of the s62 flow, read naming
        nobody, is 400 and nothing is handed over or audited as read; named, it is read."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            await submitted(police)
        [message_id] = await world.deliver_sent()
        async with TestClient(TestServer(world.app(world.marac, require_actor=False))) as client:
            refused = await call(client, "GET", "/v1/inbox", {})
            read = await call(client, "GET", "/v1/inbox", person("reader"))
        assert (refused[0], refused[1]["type"]) == (400, "urn:isa-relay:problem:actor-required")
        assert [item["id"] for item in read[1]["items"]] == [message_id]
        delivers = [e for e in await entries(world.marac) if e.action == "deliver"]
        assert [(e.message_id, e.actor_id) for e in delivers] == [(message_id, "SYN-reader")]

    async def test_the_webhook_push_is_not_refused(self, world: World) -> None:
        """The agency's own push into its case system names no person (nobody consults it
        here): it is recorded as system:webhook with its reason, not refused."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            await submitted(police)
        [message_id] = await world.deliver_sent()
        from agent.runtime import WEBHOOK_CALLER

        page = await world.marac.service().pushed_page(WEBHOOK_CALLER, 10)
        assert [item.id for item in page.items] == [message_id]
        delivers = [e for e in await entries(world.marac) if e.action == "deliver"]
        assert [(e.actor_id, e.justification) for e in delivers] == [
            ("system:webhook", "[webhook] push")
        ]


class TestS62Completeness:
    async def test_collection_disclosure_and_erasure_name_who_and_to_whom(
        self, world: World
    ) -> None:
        """The submit names the person, reason and recipient; the send (disclosure) names the
        person who submitted; the receive (collection) names the system and the sender."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            message_id = await submitted(police, "discloser")
        await world.deliver_sent()
        sent = {e.action: e for e in await entries(world.police) if e.message_id == message_id}
        for action in ("submit", "send"):
            entry = sent[action]
            assert (entry.actor_id, entry.counterparty) == ("SYN-discloser", RECIPIENT)
            assert entry.justification == "SYNTHETIC MARAC referral, high risk"
        assert sent["send"].actor == "agent"
        [received] = [e for e in await entries(world.marac) if e.action == "receive"]
        assert (received.actor_id, received.counterparty) == ("system:agent", SENDER)

    async def test_a_generalised_field_leaves_an_alteration_entry_with_paths_only(
        self, world: World
    ) -> None:
        """Minimisation turned the perpetrators' dates of birth into age bands: an ``alter``
        entry names the path and the transform, by the submitter, and holds no value."""
        body = referral(3)
        dates = [p["date_of_birth"] for p in body["payload"]["perpetrators"]]
        assert dates
        async with TestClient(TestServer(world.app(world.police))) as police:
            status, answer = await call(police, "POST", "/v1/messages", person("alterer"), body)
        assert status == 202
        [alter] = [e for e in await entries(world.police) if e.action == "alter"]
        assert (alter.message_id, alter.actor_id, alter.outcome) == (
            answer["id"],
            "SYN-alterer",
            "generalised",
        )
        assert ("perpetrators[].date_of_birth", "age_band") in {
            (a.path, a.how) for a in alter.fields_altered
        }
        text = alter.model_dump_json()
        assert not [d for d in dates if d in text]

    async def test_previews_and_status_reads_are_consultations_counted_per_window(
        self, world: World
    ) -> None:
        """20 status reads and 2 identical previews by one person: one consult entry each
        (the first of the window), the rest counted into repeat entries on close."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            message_id = await submitted(police)
            for _ in range(20):
                await call(police, "GET", f"/v1/messages/{message_id}", person("reader"))
            for _ in range(2):
                await call(police, "POST", "/v1/messages/preview", person("reader"), referral())
        await world.police.repeats.close(NOW)
        mine = [e for e in await entries(world.police) if e.actor_id == "SYN-reader"]
        assert sorted((e.action, e.outcome) for e in mine) == [
            ("consult", "message_status"), ("consult", "preview"),
            ("repeat", "message_status"), ("repeat", "preview"),
        ]  # fmt: skip
        [preview] = [e for e in mine if (e.action, e.outcome) == ("consult", "preview")]
        assert (preview.counterparty, preview.isa_id, preview.detail) == (
            RECIPIENT,
            "isa-marac-referrals",
            "decision PERMIT",
        )
        assert preview.subject_keys  # a subject access search finds the preview

    async def test_an_empty_inbox_read_is_a_consultation(self, world: World) -> None:
        """Nothing to hand over: the read still leaves one consult entry naming the reader."""
        async with TestClient(TestServer(world.app(world.marac))) as marac:
            status, page = await call(marac, "GET", "/v1/inbox", person("idle"))
        assert (status, page["items"]) == (200, [])
        consults = [(e.outcome, e.actor_id) for e in await called(world.marac)]
        assert consults == [("inbox_page", "SYN-idle")]


class TestAuditCommands:
    async def test_an_audit_search_is_a_consultation_and_the_chain_still_verifies(
        self, world: World, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``audit search`` records who searched and why (dev federation: require_actor off,
        so naming nobody is system:cli); ``audit verify`` then reports the chain intact."""
        async with TestClient(TestServer(world.app(world.police))) as police:
            await submitted(police)
        config = str(world.fed.agency(SENDER).config)
        await world.police.audit.checkpoint(NOW)  # type: ignore[attr-defined]
        search = ["audit", "search", "--config", config, "--subject-name", "Nobody SYNTHETIC",
                  "--actor-id", "SYN-dpo-1", "--actor-role", "dpo", "--justification",
                  "SAR SYN-2026-001"]  # fmt: skip
        assert await asyncio.to_thread(agent_main, search, clock=lambda: NOW) == 0
        assert (
            await asyncio.to_thread(
                agent_main, ["audit", "export", "--config", config], clock=lambda: NOW
            )
            == 0
        )
        verify = ["audit", "verify", "--config", config]
        code = await asyncio.to_thread(agent_main, verify, clock=lambda: NOW)
        out = capsys.readouterr().out
        assert code == 0, out
        assert "intact" in out
        consults = [
            (e.outcome, e.actor_id, e.actor_role, e.justification)
            for e in await entries(world.police)
            if e.action == "consult"
        ]
        assert consults == [
            ("audit_search", "SYN-dpo-1", "dpo", "SAR SYN-2026-001"),
            ("audit_export", "system:cli", "system", None),
        ]

    async def test_require_actor_makes_the_search_name_the_person(
        self, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With [api] require_actor = true, a search without --justification: one line, exit
        1, nothing searched or recorded."""
        config = world.fed.agency(SENDER).config
        strict = tmp_path / "strict.toml"
        strict.write_text(
            config.read_text().replace("require_actor = false", "require_actor = true")
        )
        data = config.parent / "data"
        text = strict.read_text().replace('data_dir = "data"', f'data_dir = "{data}"')
        strict.write_text(text.replace('"keys/', f'"{config.parent}/keys/'))
        argv = ["audit", "search", "--config", str(strict), "--subject-name", "Nobody SYNTHETIC",
                "--actor-id", "SYN-dpo-1", "--actor-role", "dpo"]  # fmt: skip
        code = await asyncio.to_thread(agent_main, argv, clock=lambda: NOW)
        err = capsys.readouterr().err
        assert code == 1
        assert "--justification" in err
        assert len(err.strip().splitlines()) == 1
        assert await called(world.police) == []


class TestErasureAndHolds:
    async def _delivered(self, world: World) -> str:
        async with TestClient(TestServer(world.app(world.police))) as police:
            await submitted(police)
        [message_id] = await world.deliver_sent()
        return message_id

    async def test_erasure_on_request_shreds_now_and_names_who_and_why(self, world: World) -> None:
        """204; the payload is gone; a purge entry names the person and their reason."""
        message_id = await self._delivered(world)
        async with TestClient(TestServer(world.app(world.marac))) as marac:
            status, _ = await call(marac, "POST", f"/v1/inbox/{message_id}/erase",
                                   person("dpo", "SYNTHETIC erasure request ER-1"))  # fmt: skip
            again, _ = await call(marac, "POST", f"/v1/inbox/{message_id}/erase",
                                  person("dpo", "SYNTHETIC erasure request ER-1"))  # fmt: skip
            page = (await call(marac, "GET", "/v1/inbox", person("reader")))[1]
        assert (status, again) == (204, 204)
        with pytest.raises(PayloadPurged):
            await world.marac.store.read_inbox_payload(message_id)
        assert page["items"] == []
        purges = [e for e in await entries(world.marac) if e.action == "purge"]
        assert [(e.message_id, e.outcome, e.actor_id, e.justification) for e in purges] == [
            (message_id, "erased_on_request", "SYN-dpo", "SYNTHETIC erasure request ER-1")
        ]

    async def test_an_erasure_under_legal_hold_is_409_and_changes_nothing(
        self, world: World
    ) -> None:
        """Held: 409 legal-hold, the payload still readable, no purge entry; released, the
        erasure goes through. The hold and its release are entries naming who and why."""
        message_id = await self._delivered(world)
        counsel = person("counsel", "SYNTHETIC litigation hold LH-7")
        async with TestClient(TestServer(world.app(world.marac))) as marac:
            assert (await call(marac, "PUT", f"/v1/inbox/{message_id}/hold", counsel))[0] == 204
            status, problem = await call(marac, "POST", f"/v1/inbox/{message_id}/erase",
                                         person("dpo"))  # fmt: skip
            held_payload = await world.marac.store.read_inbox_payload(message_id)
            purges_while_held = [e for e in await entries(world.marac) if e.action == "purge"]
            assert (await call(marac, "DELETE", f"/v1/inbox/{message_id}/hold", counsel))[0] == 204
            after, _ = await call(marac, "POST", f"/v1/inbox/{message_id}/erase", person("dpo"))
        assert (status, problem["type"]) == (409, "urn:isa-relay:problem:legal-hold")
        assert held_payload.startswith(b"{")
        assert purges_while_held == []
        assert after == 204
        holds = [(e.outcome, e.actor_id, e.justification) for e in await entries(world.marac)
                 if e.action == "hold"]  # fmt: skip
        assert holds == [
            ("placed", "SYN-counsel", "SYNTHETIC litigation hold LH-7"),
            ("released", "SYN-counsel", "SYNTHETIC litigation hold LH-7"),
        ]

    async def test_an_erasure_of_an_unknown_delivery_is_404(self, world: World) -> None:
        """A delivery this agency never received: 404, nothing audited."""
        async with TestClient(TestServer(world.app(world.marac))) as marac:
            status, _ = await call(marac, "POST",
                                   "/v1/inbox/01900000-0000-7000-8000-000000000000/erase",
                                   person("dpo"))  # fmt: skip
        assert status == 404
        assert await called(world.marac) == []

    async def test_a_reported_case_closure_is_stored_and_audited(self, world: World) -> None:
        """The closure reaches the store (retention counts from it) and the log names who."""
        message_id = await self._delivered(world)
        async with TestClient(TestServer(world.app(world.marac))) as marac:
            status, _ = await call(marac, "POST", f"/v1/inbox/{message_id}/events",
                                   person("closer", None), {"event": "case_closed"})  # fmt: skip
            bad, problem = await call(marac, "POST", f"/v1/inbox/{message_id}/events",
                                      person("closer", None), {"event": "reopened"})  # fmt: skip
        assert (status, bad) == (204, 400)
        assert "event" in problem["errors"]
        [item] = await world.marac.store.inbox_page(0, 10)
        assert item.case_closed_at == NOW
        events = [(e.outcome, e.actor_id) for e in await entries(world.marac)
                  if e.action == "case_event"]  # fmt: skip
        assert events == [("case_closed", "SYN-closer")]
