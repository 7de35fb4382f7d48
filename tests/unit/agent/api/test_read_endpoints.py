"""Status, inbox + ack, ISAs, health, metrics, the OpenAPI document, unknown routes."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.agent.api.conftest import ADMIN, ALL, RECEIVE, SEND, bearer
from tests.unit.agent.api.fake_service import FakeService, synthetic_delivery, valid_submit
from tests.unit.agent.api.test_submit import problem

Client = TestClient[web.Request, web.Application]
UNKNOWN_ID = "00000000-0000-4000-8000-00000000ffff"


class TestMessageStatus:
    async def test_a_submitted_message_shows_status_and_history(self, client: Client) -> None:
        """GET /v1/messages/{id} returns what the service knows, receipt null until one comes."""
        created = await (
            await client.post("/v1/messages", json=valid_submit(), headers=bearer(SEND))
        ).json()
        response = await client.get(f"/v1/messages/{created['id']}", headers=bearer(SEND))
        body = await response.json()
        assert (response.status, body["status"], body["to"]) == (200, "queued", "assist")
        assert body["history"][0]["status"] == "queued"
        assert body["receipt"] is None

    async def test_an_unknown_id_is_404(self, client: Client) -> None:
        """A well-formed id the agent never issued: 404 problem."""
        await problem(await client.get(f"/v1/messages/{UNKNOWN_ID}", headers=bearer(SEND)), 404)

    @pytest.mark.parametrize("bad", ["NOT-A-UUID", UNKNOWN_ID.upper(), UNKNOWN_ID + "0"])
    async def test_a_malformed_id_is_404(self, client: Client, bad: str) -> None:
        """Ids are lowercase UUIDs; any other id names nothing: 404."""
        await problem(await client.get(f"/v1/messages/{bad}", headers=bearer(SEND)), 404)

    async def test_get_preview_is_405_not_an_id(self, client: Client) -> None:
        """/v1/messages/preview is the preview resource (POST only), never a message id."""
        response = await client.get("/v1/messages/preview", headers=bearer(SEND))
        assert (response.status, response.headers["Allow"]) == (405, "POST")

    async def test_status_needs_send_scope(self, client: Client) -> None:
        """A receive-only client cannot read sent messages."""
        await problem(await client.get(f"/v1/messages/{UNKNOWN_ID}", headers=bearer(RECEIVE)), 403)


class TestInbox:
    async def test_pages_follow_the_cursor(self, client: Client) -> None:
        """after + limit page through deliveries oldest first; next_cursor is the next after."""
        first = await (await client.get("/v1/inbox?limit=2", headers=bearer(RECEIVE))).json()
        assert [i["cursor"] for i in first["items"]] == [1, 2]
        url = f"/v1/inbox?after={first['next_cursor']}&limit=2"
        second = await (await client.get(url, headers=bearer(RECEIVE))).json()
        assert [i["cursor"] for i in second["items"]] == [3, 4]

    async def test_an_empty_page_keeps_the_cursor(self, client: Client) -> None:
        """Past the last delivery, next_cursor stays where the client asked."""
        body = await (await client.get("/v1/inbox?after=99", headers=bearer(RECEIVE))).json()
        assert body == {"items": [], "next_cursor": 99}

    async def test_items_carry_the_header_fields(self, client: Client) -> None:
        """Each delivery carries from, type, isa, purpose, lawful basis, risk, handling."""
        body = await (await client.get("/v1/inbox?limit=1", headers=bearer(RECEIVE))).json()
        expected = synthetic_delivery(1).model_dump(mode="json")
        assert body["items"] == [expected]
        assert body["items"][0]["from"] == "police"

    @pytest.mark.parametrize(
        "query",
        ["limit=0", "limit=501", "limit=abc", "after=-1", "after=1.5", "after=%20%201", "after=٣",
         "after=1&after=2", f"after={2**63}"],
    )  # fmt: skip
    async def test_bad_paging_values_are_400(self, client: Client, query: str) -> None:
        """after is an integer >= 0, limit 1..500, each given at most once."""
        await problem(await client.get(f"/v1/inbox?{query}", headers=bearer(RECEIVE)), 400)

    async def test_ack_removes_a_delivery(self, client: Client, service: FakeService) -> None:
        """POST /v1/inbox/{id}/ack answers 204 with no body and the item is gone."""
        item_id = synthetic_delivery(1).id
        response = await client.post(f"/v1/inbox/{item_id}/ack", headers=bearer(RECEIVE))
        assert (response.status, await response.read()) == (204, b"")
        assert 1 not in service.inbox_items

    async def test_ack_of_an_unknown_delivery_is_404(self, client: Client) -> None:
        """Only deliveries the agent holds can be acknowledged."""
        await problem(
            await client.post(f"/v1/inbox/{UNKNOWN_ID}/ack", headers=bearer(RECEIVE)), 404
        )

    async def test_the_inbox_needs_receive_scope(self, client: Client) -> None:
        """A send-only client cannot read deliveries."""
        await problem(await client.get("/v1/inbox", headers=bearer(SEND)), 403)

    async def test_inbox_answers_are_not_cached(self, client: Client) -> None:
        """Personal data leaves with Cache-Control: no-store."""
        response = await client.get("/v1/inbox", headers=bearer(RECEIVE))
        assert response.headers["Cache-Control"] == "no-store"


class TestIsas:
    @pytest.mark.parametrize("token", [SEND, RECEIVE, ADMIN])
    async def test_any_valid_token_lists_isas(self, client: Client, token: str) -> None:
        """Every client may read the ISAs it works under."""
        response = await client.get("/v1/isas", headers=bearer(token))
        body = await response.json()
        assert (response.status, [i["id"] for i in body]) == (200, ["SYN-ISA-1"])
        assert body[0]["flows"][0]["from"] == "police"

    async def test_isas_need_a_token(self, client: Client) -> None:
        """No token, no ISAs."""
        await problem(await client.get("/v1/isas"), 401)


class TestHealth:
    async def test_healthy_is_200_without_a_token(self, client: Client) -> None:
        """/healthz needs no token and answers 200 when everything is well."""
        response = await client.get("/healthz")
        body = await response.json()
        assert (response.status, body["status"], body["manifest"]["serial"]) == (200, "ok", 7)

    async def test_fail_closed_is_503_with_the_reason(
        self, client: Client, service: FakeService
    ) -> None:
        """An expired manifest makes health 503 and says fail_closed."""
        service.fail_closed = True
        response = await client.get("/healthz")
        body = await response.json()
        assert (response.status, body["status"], body["manifest"]["valid"]) == (
            503,
            "fail_closed",
            False,
        )


class TestProbes:
    async def test_liveness_is_200_without_a_token(self, client: Client) -> None:
        """/livez needs no token and answers alive while the service answers."""
        response = await client.get("/livez")
        assert (response.status, await response.json()) == (200, {"status": "alive"})

    async def test_liveness_is_503_when_the_store_cannot_be_read(
        self, client: Client, service: FakeService
    ) -> None:
        """A store that cannot be read is beyond recovery in-process: 503, so a probe restarts."""
        service.store_down = True
        await problem(await client.get("/livez"), 503)

    async def test_liveness_stays_200_when_fail_closed(
        self, client: Client, service: FakeService
    ) -> None:
        """An expired manifest is not a reason to restart the process."""
        service.fail_closed = True
        assert (await client.get("/livez")).status == 200

    async def test_readiness_is_200_ready_when_everything_is_well(self, client: Client) -> None:
        """/readyz needs no token and answers ready with nothing missing or degraded."""
        response = await client.get("/readyz")
        body = await response.json()
        assert (response.status, body) == (200, {"status": "ready", "missing": [], "degraded": []})

    async def test_readiness_is_503_naming_the_manifest_when_fail_closed(
        self, client: Client, service: FakeService
    ) -> None:
        """Fail-closed trust: 503 with a JSON body whose missing check is the manifest."""
        service.fail_closed = True
        response = await client.get("/readyz")
        body = await response.json()
        assert (response.status, response.content_type) == (503, "application/json")
        assert (body["status"], [m["check"] for m in body["missing"]]) == (
            "not_ready",
            ["manifest"],
        )

    async def test_readiness_is_503_naming_the_store_when_it_is_down(
        self, client: Client, service: FakeService
    ) -> None:
        """A store that cannot be read: 503 naming the store."""
        service.store_down = True
        body = await (await client.get("/readyz")).json()
        assert [m["check"] for m in body["missing"]] == ["store"]

    @pytest.mark.parametrize("path", ["/livez", "/readyz"])
    async def test_probes_refuse_unknown_query_parameters(self, client: Client, path: str) -> None:
        """Like every route, a typo in the query is a 400, never ignored."""
        await problem(await client.get(path + "?verbose=1"), 400)


class TestMetrics:
    async def test_admin_reads_prometheus_text(self, client: Client) -> None:
        """/metrics answers the exposition format to an admin token."""
        response = await client.get("/metrics", headers=bearer(ADMIN))
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "isa_outbox_depth 0" in await response.text()

    async def test_api_requests_are_counted_by_route_template(self, client: Client) -> None:
        """The HTTP layer adds its own counters, labelled by route template, never a raw id."""
        await client.get(f"/v1/messages/{UNKNOWN_ID}", headers=bearer(SEND))
        text = await (await client.get("/metrics", headers=bearer(ADMIN))).text()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        labels = (("method", "GET"), ("route", "/v1/messages/{id}"), ("status", "404"))
        assert samples[("isa_api_requests_total", labels)] == 1
        assert UNKNOWN_ID not in text
        assert samples[("isa_api_request_seconds_count", ())] == 1

    @pytest.mark.parametrize(("headers", "status"), [({}, 401), (bearer(SEND), 403)])
    async def test_metrics_need_admin(
        self, client: Client, headers: dict[str, str], status: int
    ) -> None:
        """Counters reveal traffic between agencies: admin only."""
        await problem(await client.get("/metrics", headers=headers), status)


class TestRouting:
    async def test_the_openapi_document_is_served_without_a_token(self, client: Client) -> None:
        """GET /v1/openapi.json returns the OpenAPI 3.1 document."""
        body: dict[str, Any] = await (await client.get("/v1/openapi.json")).json()
        assert body["openapi"] == "3.1.0"
        assert "/v1/messages" in body["paths"]

    @pytest.mark.parametrize("path", ["/", "/v1/nothing", "/v1/messages/", "/v1/inbox/x/y/z"])
    async def test_unknown_paths_are_404_problems(self, client: Client, path: str) -> None:
        """Any URL the API does not have: 404 as problem+json."""
        await problem(await client.get(path, headers=bearer(ALL)), 404)

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("GET", "/v1/messages", "POST"),
            ("DELETE", "/v1/inbox", "GET"),
            ("HEAD", "/healthz", "GET"),
        ],
    )
    async def test_wrong_methods_are_405_problems_with_allow(
        self, client: Client, method: str, path: str, allow: str
    ) -> None:
        """A known path with another method: 405 problem listing the allowed methods."""
        response = await client.request(method, path, headers=bearer(ALL))
        assert (response.status, response.headers["Allow"]) == (405, allow)
        if method != "HEAD":
            await problem(response, 405)
