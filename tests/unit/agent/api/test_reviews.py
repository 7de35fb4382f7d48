"""The review queue through the HTTP API, over the real service, store fake and ISA (synthetic).

assist's case system submits a medium-risk MARAC referral (the shipped ISA holds it for review
by ``marac_reviewer``); people act on it through ``/v1/reviews``. Every bad request answers a
problem+json and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.actor import Actor
from agent.api import create_app
from agent.auth import ApiClient, hash_token
from agent.metrics import Metrics
from agent.reviews import watch_reviews
from agent.service import Service
from agent.store import ReviewRecord
from federation.manifest import TrustState
from federation.pipeline import leaf_paths
from federation.review import ReviewState
from federation.synth import generate_referral
from tests.support.memory_store import MemoryStore
from tests.unit.agent import fakes
from tests.unit.agent.fakes import (
    ISA,
    KIND,
    NOW,
    PURPOSE,
    RECIPIENT,
    SENDER,
    FixedTrust,
    ListAudit,
    RecordingPublisher,
)

TOKEN = "syn-token-review-000000000000000000000"
RECEIVE_ONLY = "syn-token-receive-only-0000000000000000"
CLIENTS = (
    ApiClient(name="case-all", token_sha256=hash_token(TOKEN), scopes=frozenset({"send"})),
    ApiClient(name="inbox", token_sha256=hash_token(RECEIVE_ONLY), scopes=frozenset({"receive"})),
)
WORKER = {
    "X-Actor-Id": "SYN-worker-1",
    "X-Actor-Role": "practitioner",
    "X-Actor-Justification": "SYN: MARAC referral, medium risk",
}
#: Who reads the queue and the feed where a test names nobody else (the agent requires a person).
READER = {"X-Actor-Id": "SYN-reader-3", "X-Actor-Role": "case_worker"}
REVIEWER = {
    "X-Actor-Id": "SYN-reviewer-2",
    "X-Actor-Role": "marac_reviewer",
    "X-Actor-Justification": "SYN: meets the MARAC threshold on professional judgement",
}
UNKNOWN = "00000000-0000-4000-8000-000000000000"

Client = TestClient[web.Request, web.Application]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Rig:
    client: Client
    store: MemoryStore
    audit: ListAudit
    clock: Clock
    metrics: Metrics

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        named = READER if headers is None else headers  # {}: nobody named
        sent = {"Authorization": f"Bearer {TOKEN}", **named}
        data = None if body is None else json.dumps(body)
        if data is not None:
            sent["Content-Type"] = "application/json"
        response = await self.client.request(method, path, data=data, headers=sent)
        text = await response.text()
        return response.status, (json.loads(text) if text else None)

    async def hold(self, seed: int = 1, **changes: Any) -> dict[str, Any]:
        status, body = await self.call("POST", "/v1/messages", medium(seed, **changes), WORKER)
        assert status == 202, body
        return body

    async def events(self) -> list[tuple[str, str | None, str | None]]:
        _, page = await self.call("GET", "/v1/events?after=0&limit=100")
        return [(e["event"], e["review_id"], e["message_id"]) for e in page["items"]]


class StaleOnce(MemoryStore):
    """A store whose next ``review`` read returns ``stale`` (what a racing reader saw)."""

    stale: ReviewRecord | None = None

    async def review(self, review_id: str) -> ReviewRecord:
        stale, self.stale = self.stale, None
        return stale if stale is not None else await super().review(review_id)


def medium(seed: int = 1, **changes: Any) -> dict[str, Any]:
    payload = generate_referral(KIND, random.Random(seed), risk_level="medium")
    body = {"to": RECIPIENT, "isa": ISA.id, "purpose": PURPOSE, "type": KIND, "payload": payload}
    return body | changes


def problem_type(body: dict[str, Any]) -> str:
    return str(body["type"]).removeprefix("urn:isa-relay:problem:")


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with make_rig() as made:
        yield made


def make_rig(**changes: Any) -> _RigContext:
    return _RigContext(changes)


class _RigContext:
    def __init__(self, changes: dict[str, Any]) -> None:
        self.changes = changes
        self.client: Client | None = None

    async def __aenter__(self) -> Rig:
        store = self.changes.pop("store", None) or MemoryStore()
        require_actor = self.changes.pop("require_actor", True)
        audit, clock, metrics = ListAudit(), Clock(), Metrics()
        base = fakes.service(store, audit, publisher=RecordingPublisher())
        service: Service = dataclasses.replace(base, clock=clock, metrics=metrics,
                                               **self.changes)  # fmt: skip
        self.client = TestClient(
            TestServer(create_app(service, CLIENTS, require_actor=require_actor))
        )
        await self.client.start_server()
        return Rig(self.client, store, audit, clock, metrics)

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        await self.client.close()


class TestHeldForReview:
    async def test_a_review_decision_is_held_unsent_with_202_review_pending(self, rig: Rig) -> None:
        """202 review_pending, a review id, Location /v1/reviews/{id}; nothing in the outbox."""
        status, body = await rig.call("POST", "/v1/messages", medium(), WORKER)
        assert status == 202, body
        assert (body["status"], body["review_id"]) == ("review_pending", body["id"])
        assert await rig.store.outbox_depth() == 0
        _, page = await rig.call("GET", "/v1/reviews")
        assert [item["id"] for item in page["items"]] == [body["id"]]
        assert await rig.events() == [("review_pending", body["id"], None)]

    async def test_the_location_is_the_review(self, rig: Rig) -> None:
        """The Location header points at the review, not at a message."""
        response = await rig.client.post(
            "/v1/messages", json=medium(), headers={"Authorization": f"Bearer {TOKEN}", **WORKER}
        )
        body = await response.json()
        assert response.headers["Location"] == f"/v1/reviews/{body['id']}"

    async def test_without_the_submitter_named_nothing_is_held(self) -> None:
        """Even where the API lets a call name nobody (no ``require_actor``), a referral held
        for review needs its submitter: 400 actor-required; no review, no message, no event."""
        async with make_rig(require_actor=False) as rig:
            status, body = await rig.call("POST", "/v1/messages", medium(), {})
            assert (status, problem_type(body)) == (400, "actor-required")
            assert "X-Actor-Id" in body["detail"]
            assert await rig.store.reviews_page(0, 10) == []
            assert await rig.events() == []

    async def test_a_permitted_referral_is_queued_not_held(self, rig: Rig) -> None:
        """High risk is PERMIT: 202 queued, no review."""
        status, body = await rig.call("POST", "/v1/messages", fakes.request().model_dump(), WORKER)
        assert (status, body["status"], body["review_id"]) == (202, "queued", None)

    async def test_the_view_names_fields_never_values(self, rig: Rig) -> None:
        """GET /v1/reviews/{id}: fields, reasons, role and due time; no payload value."""
        held = await rig.hold()
        status, view = await rig.call("GET", f"/v1/reviews/{held['id']}")
        assert status == 200
        assert (view["status"], view["reviewer_role"], view["submitted_by"]) == (
            "pending", "marac_reviewer", "SYN-worker-1")  # fmt: skip
        assert view["due_at"] == "2026-03-03T12:00:00Z"  # P2D after NOW
        assert view["shared_fields"] == held["shared_fields"]
        name = medium()["payload"]["victim"]["name"]
        assert name not in json.dumps(view)

    async def test_a_repeated_submit_with_its_key_returns_the_same_review(self, rig: Rig) -> None:
        """The same idempotency key and body: the first review, not a second."""
        first = await rig.hold(idempotency_key="SYN-k-1")
        again = await rig.hold(idempotency_key="SYN-k-1")
        assert again["id"] == first["id"]
        assert len(await rig.store.reviews_page(0, 10)) == 1

    @pytest.mark.parametrize(
        ("headers", "bad"),
        [({"X-Actor-Id": "has space"}, "X-Actor-Id"),
         ({"X-Actor-Id": "a", "X-Actor-Role": "Bad Role"}, "X-Actor-Role")],
    )  # fmt: skip
    async def test_malformed_actor_headers_are_400_naming_the_header(
        self, rig: Rig, headers: dict[str, str], bad: str
    ) -> None:
        """A malformed actor header is a 400 naming it, never its value; nothing held."""
        status, body = await rig.call("POST", "/v1/messages", medium(), headers)
        assert (status, problem_type(body)) == (400, "actor-invalid")
        assert bad in body["detail"]
        assert "has space" not in json.dumps(body)
        assert await rig.store.reviews_page(0, 10) == []

    async def test_a_role_without_a_person_is_400_and_holds_nothing(self, rig: Rig) -> None:
        """X-Actor-Role with no X-Actor-Id: 400 actor-invalid (they come together)."""
        headers = {"X-Actor-Role": "practitioner"}
        status, body = await rig.call("POST", "/v1/messages", medium(), headers)
        assert (status, problem_type(body)) == (400, "actor-invalid")
        assert await rig.store.reviews_page(0, 10) == []


class TestApprove:
    async def test_a_second_person_approves_and_it_is_queued(self, rig: Rig) -> None:
        """Approved: the message is queued like a submit; events pending then approved."""
        held = await rig.hold()
        status, view = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        assert (status, view["status"]) == (200, "approved"), view
        mid = view["message_id"]
        assert view["decided_by"] == "case-all/SYN-reviewer-2"
        status, message = await rig.call("GET", f"/v1/messages/{mid}")
        assert (status, message["status"]) == (200, "queued")
        assert await rig.events() == [("review_pending", held["id"], None),
                                      ("review_approved", held["id"], mid)]  # fmt: skip
        assert rig.metrics.counts["isa_agent_reviews_approved_total"] == 1

    async def test_approval_needs_no_body(self, rig: Rig) -> None:
        """POST approve with no body at all, justification in the header: approved."""
        held = await rig.hold()
        response = await rig.client.post(
            f"/v1/reviews/{held['id']}/approve",
            headers={"Authorization": f"Bearer {TOKEN}", **REVIEWER},
        )
        assert response.status == 200

    async def test_the_submitter_cannot_approve_their_own(self, rig: Rig) -> None:
        """403 own-submission, audited; still pending, nothing queued."""
        held = await rig.hold()
        own = {**REVIEWER, "X-Actor-Id": "SYN-worker-1"}
        status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, own)
        assert (status, problem_type(body)) == (403, "own-submission")
        assert await self._unchanged(rig, held["id"])
        assert ("review", "approve_refused") in [(e.action, e.outcome) for e, _, _ in
                                                 rig.audit.entries]  # fmt: skip

    async def test_a_person_without_the_role_cannot_approve(self, rig: Rig) -> None:
        """403 not-a-reviewer naming the role needed; nothing changed."""
        held = await rig.hold()
        headers = {**REVIEWER, "X-Actor-Role": "practitioner"}
        status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, headers)
        assert (status, problem_type(body)) == (403, "not-a-reviewer")
        assert "marac_reviewer" in body["detail"]
        assert await self._unchanged(rig, held["id"])

    async def test_a_person_without_a_role_is_400(self, rig: Rig) -> None:
        """X-Actor-Id without X-Actor-Role: 400 actor-invalid; nothing changed."""
        held = await rig.hold()
        headers = {k: v for k, v in REVIEWER.items() if k != "X-Actor-Role"}
        status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, headers)
        assert (status, problem_type(body)) == (400, "actor-invalid")
        assert await self._unchanged(rig, held["id"])

    @pytest.mark.parametrize("require_actor", [True, False])
    async def test_nobody_named_cannot_approve(self, require_actor: bool) -> None:
        """No actor headers at all: 400 actor-required, whatever ``require_actor`` says."""
        async with make_rig(require_actor=require_actor) as rig:
            held = await rig.hold()
            status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, {})
            assert (status, problem_type(body)) == (400, "actor-required")
            assert await self._unchanged(rig, held["id"])

    async def test_an_approval_needs_a_justification(self, rig: Rig) -> None:
        """No X-Actor-Justification: 400 justification-required; nothing changed."""
        held = await rig.hold()
        headers = {k: v for k, v in REVIEWER.items() if k != "X-Actor-Justification"}
        body = {"justification": "SYN: only in the body"}
        status, problem = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", body,
                                         headers)  # fmt: skip
        assert (status, problem_type(problem)) == (400, "justification-required")
        assert await self._unchanged(rig, held["id"])

    async def test_a_body_justification_replaces_the_headers(self, rig: Rig) -> None:
        """The body's justification is the one the approval's entries record."""
        held = await rig.hold()
        body = {"justification": "SYN: the body's reason"}
        status, _ = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", body, REVIEWER)
        assert status == 200
        approved = [e for e, _, _ in rig.audit.entries if e.outcome == "approved"]
        assert [e.person.justification for e in approved if e.person] == [body["justification"]]

    async def test_a_second_approval_is_409_and_sends_nothing_more(self, rig: Rig) -> None:
        """Approving an approved review: 409 review-settled; still one message."""
        held = await rig.hold()
        await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        assert (status, problem_type(body)) == (409, "review-settled")
        assert await rig.store.outbox_depth() == 1

    async def test_an_unknown_review_is_404(self, rig: Rig) -> None:
        """No such review: 404 for the view and for each action."""
        for method, path in (("GET", ""), ("POST", "/approve"), ("POST", "/return")):
            body = {"reason": "SYN"} if path == "/return" else {}
            status, _ = await rig.call(method, f"/v1/reviews/{UNKNOWN}{path}",
                                       None if method == "GET" else body, REVIEWER)  # fmt: skip
            assert status == 404, path

    async def test_a_receive_only_client_cannot_list_reviews(self, rig: Rig) -> None:
        """The review queue needs the send scope: 403 forbidden."""
        response = await rig.client.get(
            "/v1/reviews", headers={"Authorization": f"Bearer {RECEIVE_ONLY}"}
        )
        assert response.status == 403

    async def test_approval_decides_again_and_a_fresh_deny_leaves_it_pending(self) -> None:
        """The ISA ended since it was held: 403 denied with reasons; still pending, unsent."""
        async with make_rig() as rig:
            held = await rig.hold()
            rig.clock.now = datetime(2028, 1, 2, 12, 0, tzinfo=NOW.tzinfo)  # ISA ended 2027
            status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {},
                                          REVIEWER)  # fmt: skip
            assert (status, problem_type(body)) == (403, "denied")
            assert any("ended" in reason for reason in body["reasons"])
            assert await self._unchanged(rig, held["id"])

    async def test_a_trust_failure_at_approval_is_its_503_and_leaves_it_pending(self) -> None:
        """No valid manifest now: 503 trust-unavailable with Retry-After; still pending."""
        async with make_rig(trust=FixedTrust(state=TrustState(None))) as rig:
            held = await rig.hold()
            response = await rig.client.post(
                f"/v1/reviews/{held['id']}/approve", json={},
                headers={"Authorization": f"Bearer {TOKEN}", **REVIEWER},
            )  # fmt: skip
            assert response.status == 503
            assert problem_type(await response.json()) == "trust-unavailable"
            assert await self._unchanged(rig, held["id"])

    async def test_the_approval_is_audited_with_the_person_and_justification(
        self, rig: Rig
    ) -> None:
        """review approved (who, justification), then the message's decision and submit."""
        held = await rig.hold()
        _, view = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        events = [e for e, _, _ in rig.audit.entries if e.action != "alter"]
        entries = [(e.action, e.outcome, e.actor, e.message_id) for e in events]
        assert entries[-3:] == [("review", "approved", "case-all", held["id"]),
                                ("decision", "REVIEW", "case-all", view["message_id"]),
                                ("submit", "queued", "case-all", view["message_id"])]  # fmt: skip
        reviewer = Actor("SYN-reviewer-2", "marac_reviewer", REVIEWER["X-Actor-Justification"])
        assert {e.person for e in events[-3:]} == {reviewer}
        assert "SYN-reviewer-2" not in events[-3].detail  # the person is in the actor fields

    async def test_a_review_settled_during_an_approval_is_409_not_410(self) -> None:
        """Returned between the approval's checks and its read of the held request (a race):
        409 review-settled, and nothing is sent."""
        store = StaleOnce()
        async with make_rig(store=store) as rig:
            rig.store = store
            held = await rig.hold()
            store.stale = await store.review(held["id"])
            await store.return_review(held["id"], "SYN: race", by="x", at=NOW)
            status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {},
                                          REVIEWER)  # fmt: skip
            assert (status, problem_type(body)) == (409, "review-settled")
            assert await store.outbox_depth() == 0

    @staticmethod
    async def _unchanged(rig: Rig, review_id: str) -> bool:
        review = await rig.store.review(review_id)
        return review.state is ReviewState.PENDING and await rig.store.outbox_depth() == 0


class TestNarrow:
    async def test_a_narrowing_that_widens_is_422_and_changes_nothing(self, rig: Rig) -> None:
        """Naming a withheld field: 422 narrowing-widens naming it; the review as it was."""
        held = await rig.hold()
        wider = [*held["shared_fields"][:2], "dash.q1.answer"]
        status, body = await rig.call(
            "POST", f"/v1/reviews/{held['id']}/narrow", {"shared_fields": wider}, REVIEWER
        )
        assert (status, problem_type(body)) == (422, "narrowing-widens")
        assert list(body["errors"]) == ["dash.q1.answer"]
        review = await rig.store.review(held["id"])
        assert review.narrowed is None
        assert await rig.events() == [("review_pending", held["id"], None)]

    async def test_narrowing_to_nothing_is_422(self, rig: Rig) -> None:
        """An empty narrowing: 422 narrowing-invalid (return it instead)."""
        held = await rig.hold()
        status, body = await rig.call(
            "POST", f"/v1/reviews/{held['id']}/narrow", {"shared_fields": []}, REVIEWER
        )
        assert (status, problem_type(body)) == (422, "narrowing-invalid")

    async def test_a_narrowed_approval_sends_only_the_fields_kept(self, rig: Rig) -> None:
        """Narrow to a few fields, approve: the recipient opens exactly those, no more."""
        held = await rig.hold()
        keep = [
            f for f in held["shared_fields"] if f.startswith(("synthetic", "referral", "dash."))
        ]
        status, view = await rig.call(
            "POST", f"/v1/reviews/{held['id']}/narrow", {"shared_fields": keep}, REVIEWER
        )
        assert (status, view["status"], view["narrowed"]) == (200, "pending", True)
        assert view["shared_fields"] == sorted(keep)
        withheld = {w["path"] for w in view["withheld_fields"]}
        assert set(held["shared_fields"]) - set(keep) <= withheld
        _, approved = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        payload = await opened(rig.store, approved["message_id"])
        assert leaf_paths(payload) == set(keep)

    async def test_a_field_the_message_type_requires_cannot_be_withheld(self, rig: Rig) -> None:
        """Leaving out ``synthetic`` (required on the wire): 422 naming it; nothing changed."""
        held = await rig.hold()
        keep = [f for f in held["shared_fields"] if f != "synthetic"]
        status, body = await rig.call(
            "POST", f"/v1/reviews/{held['id']}/narrow", {"shared_fields": keep}, REVIEWER
        )
        assert (status, problem_type(body), list(body["errors"])) == (
            422, "narrowing-invalid", ["synthetic"])  # fmt: skip
        assert (await rig.store.review(held["id"])).narrowed is None

    async def test_a_narrowing_can_only_narrow_further(self, rig: Rig) -> None:
        """After narrowing to two fields, a field narrowed away cannot come back (422)."""
        held = await rig.hold()
        first, second = "synthetic", held["shared_fields"][0]
        url = f"/v1/reviews/{held['id']}/narrow"
        await rig.call("POST", url, {"shared_fields": [first, second]}, REVIEWER)
        back = [first, held["shared_fields"][1]]
        status, body = await rig.call("POST", url, {"shared_fields": back}, REVIEWER)
        assert (status, problem_type(body)) == (422, "narrowing-widens")


class TestReturn:
    async def test_a_returned_review_is_never_sent(self, rig: Rig) -> None:
        """Returned with a reason: settled, no message; approval afterwards is 409."""
        held = await rig.hold()
        status, view = await rig.call(
            "POST", f"/v1/reviews/{held['id']}/return", {"reason": "SYN: add the DASH"}, REVIEWER
        )
        assert (status, view["status"], view["return_reason"]) == (
            200, "returned", "SYN: add the DASH")  # fmt: skip
        status, _ = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        assert status == 409
        assert await rig.store.outbox_depth() == 0
        assert (await rig.events())[-1] == ("review_returned", held["id"], None)
        _, page = await rig.call("GET", "/v1/reviews")
        assert page["items"] == []

    async def test_a_return_needs_a_reason(self, rig: Rig) -> None:
        """No reason: 400 (the body's schema); still pending."""
        held = await rig.hold()
        status, _ = await rig.call("POST", f"/v1/reviews/{held['id']}/return", {}, REVIEWER)
        assert status == 400
        assert (await rig.store.review(held["id"])).state is ReviewState.PENDING


class TestOverdue:
    async def test_an_overdue_review_escalates_once_and_shows_overdue(self, rig: Rig) -> None:
        """Past P2D: the list says overdue; one event, one count, one audit entry."""
        held = await rig.hold()
        _, page = await rig.call("GET", "/v1/reviews")
        assert page["items"][0]["overdue"] is False
        rig.clock.now = NOW + timedelta(days=2, minutes=1)
        for _ in range(2):
            await watch_reviews(rig.store, rig.audit, rig.metrics, rig.clock())
        _, page = await rig.call("GET", "/v1/reviews")
        assert (page["items"][0]["overdue"], page["items"][0]["escalated_at"]) == (
            True, "2026-03-03T12:01:00Z")  # fmt: skip
        assert [e for e, _, _ in await rig.events()] == ["review_pending", "review_overdue"]
        assert rig.metrics.counts["isa_agent_reviews_overdue_total"] == 1
        outcomes = [(e.action, e.outcome, e.message_id) for e, _, _ in rig.audit.entries]
        assert outcomes.count(("review", "overdue", held["id"])) == 1

    async def test_a_review_held_too_long_expires_unsent(self, rig: Rig) -> None:
        """Past review_hold (14 days): expired, never sent; approval is 409."""
        held = await rig.hold()
        rig.clock.now = NOW + timedelta(days=14)
        await watch_reviews(rig.store, rig.audit, rig.metrics, rig.clock())
        status, view = await rig.call("GET", f"/v1/reviews/{held['id']}")
        assert view["status"] == "expired"
        status, body = await rig.call("POST", f"/v1/reviews/{held['id']}/approve", {}, REVIEWER)
        assert (status, problem_type(body)) == (409, "review-settled")
        assert await rig.store.outbox_depth() == 0


class TestEventFeed:
    async def test_the_feed_pages_in_order(self, rig: Rig) -> None:
        """Three held: pages of two by cursor, next_cursor unchanged on an empty page."""
        for seed in range(3):
            await rig.hold(seed)
        _, first = await rig.call("GET", "/v1/events?limit=2")
        _, rest = await rig.call("GET", f"/v1/events?after={first['next_cursor']}&limit=2")
        _, empty = await rig.call("GET", f"/v1/events?after={rest['next_cursor']}")
        assert [len(first["items"]), len(rest["items"]), len(empty["items"])] == [2, 1, 0]
        assert empty["next_cursor"] == rest["next_cursor"]

    @pytest.mark.parametrize("query", ["after=-1", "limit=0", "limit=501", "cursor=3"])
    async def test_a_bad_query_is_400(self, rig: Rig, query: str) -> None:
        """Out of range or unknown query parameters: 400 problem."""
        status, body = await rig.call("GET", f"/v1/events?{query}")
        assert status == 400, body


async def opened(store: MemoryStore, message_id: str) -> dict[str, Any]:
    """The payload the recipient opens from the frame queued under ``message_id``."""
    [due] = [m for m in await store.due_outgoing(NOW + timedelta(minutes=1), 10)
             if m.id == message_id]  # fmt: skip
    inbox = MemoryStore()
    outcome = await fakes.receiver(inbox, RecordingPublisher(), ListAudit())(
        fakes.delivery(due.frame, user_id=SENDER)
    )
    assert outcome.name == "ACK"
    [item] = await inbox.inbox_page(0, 10)
    payload: dict[str, Any] = json.loads(await inbox.read_inbox_payload(item.id))
    return payload
