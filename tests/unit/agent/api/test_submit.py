"""POST /v1/messages and /v1/messages/preview: every DESIGN status, as problem+json."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.unit.agent.api.conftest import ALL, MAX_BODY, RECEIVE, SEND, bearer
from tests.unit.agent.api.fake_service import FakeService, valid_submit

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"


async def post(client: Client, body: Any, token: str = SEND, path: str = "/v1/messages") -> Any:
    return await client.post(path, json=body, headers=bearer(token))


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


class TestSubmitAccepted:
    async def test_202_with_shared_and_withheld_fields(self, client: Client) -> None:
        """A permitted referral answers 202 with what was shared and what was withheld, why."""
        response = await post(client, valid_submit())
        assert response.status == 202
        body = await response.json()
        assert body["status"] == "queued"
        assert body["shared_fields"] == ["risk", "subject.name"]
        assert {"path": "subject.postcode", "reason": "not allowed by SYN-ISA-1"} in body[
            "withheld_fields"
        ]

    async def test_location_names_the_status_resource(self, client: Client) -> None:
        """The 202 says where to follow the message."""
        response = await post(client, valid_submit())
        assert response.headers["Location"] == f"/v1/messages/{(await response.json())['id']}"

    async def test_the_service_hears_the_client_name(
        self, client: Client, service: FakeService
    ) -> None:
        """The authenticated client's name reaches the service (for the audit log)."""
        await post(client, valid_submit(), token=ALL)
        assert service.submitted_by == ["case-all"]

    async def test_same_idempotency_key_and_body_gives_the_same_answer(
        self, client: Client, service: FakeService
    ) -> None:
        """A retried submit with its key is not stored twice."""
        first = await (await post(client, valid_submit(idempotency_key="SYN-K1"))).json()
        second = await post(client, valid_submit(idempotency_key="SYN-K1"))
        assert second.status == 202
        assert (await second.json())["id"] == first["id"]
        assert len(service.outbox) == 1


class TestSubmitRejected:
    @pytest.mark.parametrize(
        ("data", "content_type"),
        [
            (b"{not json", "application/json"),
            (b"[1, 2]", "application/json"),
            (b'"text"', "application/json"),
            (b"\xff\xfe{}", "application/json"),
            (b'{"to": NaN}', "application/json"),
            (b'{"to": "a", "to": "b"}', "application/json"),
            (b'{"p": "\\ud800"}', "application/json"),
            (b"[" * 2000 + b"]" * 2000, "application/json"),
            (json.dumps(valid_submit()).encode(), "text/plain"),
            (json.dumps(valid_submit()).encode(), "application/x-www-form-urlencoded"),
        ],
    )
    async def test_malformed_bodies_are_400(
        self, client: Client, data: bytes, content_type: str
    ) -> None:
        """Not UTF-8 JSON, not an object, NaN, duplicate keys, lone surrogates, deep nesting, or
        the wrong content type: 400."""
        headers = {**bearer(SEND), "Content-Type": content_type}
        response = await client.post("/v1/messages", data=data, headers=headers)
        await problem(response, 400)

    async def test_payload_nested_too_deep_is_400(self, client: Client) -> None:
        """Nesting deeper than the limit is refused before the service sees it."""
        deep: dict[str, Any] = {}
        for _ in range(70):
            deep = {"x": deep}
        await problem(await post(client, valid_submit(payload=deep)), 400)

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"surprise": 1}, "surprise"),
            ({"to": 7}, "to"),
            ({"to": "Not An Agency"}, "to"),
            ({"payload": ["a"]}, "payload"),
            ({"idempotency_key": ""}, "idempotency_key"),
            ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ],
    )
    async def test_schema_violations_are_400_naming_the_field(
        self, client: Client, change: dict[str, Any], field: str
    ) -> None:
        """Unknown fields, wrong types and bad values: 400 with the field's path in errors."""
        body = await problem(await post(client, valid_submit(**change)), 400)
        assert field in body["errors"]

    async def test_a_missing_field_is_400(self, client: Client) -> None:
        """Every required field must be there."""
        request = valid_submit()
        del request["purpose"]
        body = await problem(await post(client, request), 400)
        assert body["errors"] == {"purpose": "Field required"}

    async def test_values_are_not_echoed(self, client: Client) -> None:
        """A bad value never comes back in the error."""
        response = await post(client, valid_submit(to="SYN-PRIVATE VALUE"))
        assert "SYN-PRIVATE" not in await response.text()

    @pytest.mark.parametrize("headers", [{}, bearer("syn-wrong"), {"Authorization": "Basic x"}])
    async def test_no_or_bad_token_is_401(self, client: Client, headers: dict[str, str]) -> None:
        """Without a valid bearer token: 401 with a Bearer challenge."""
        response = await client.post("/v1/messages", json=valid_submit(), headers=headers)
        await problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_401_comes_before_reading_the_body(self, client: Client) -> None:
        """An unauthenticated client learns nothing about its body."""
        response = await client.post("/v1/messages", data=b"{bad", headers=bearer("syn-wrong"))
        await problem(response, 401)

    async def test_a_token_without_send_scope_is_403(self, client: Client) -> None:
        """A receive-only client cannot submit."""
        await problem(await post(client, valid_submit(), token=RECEIVE), 403)

    async def test_isa_denial_is_403_with_reasons(self, client: Client) -> None:
        """A referral no ISA allows: 403 carrying the Decision's reasons."""
        body = await problem(await post(client, valid_submit(to="health")), 403)
        assert body["reasons"] == [
            "no flow in an active ISA allows marac_referral to health for marac"
        ]

    async def test_idempotency_key_reused_with_another_body_is_409(self, client: Client) -> None:
        """Same key, different body: 409, and nothing new is stored."""
        await post(client, valid_submit(idempotency_key="SYN-K2"))
        other = valid_submit(idempotency_key="SYN-K2", purpose="other")
        await problem(await post(client, other), 409)

    async def test_a_body_over_the_limit_is_413(self, client: Client) -> None:
        """Bigger than max_body_bytes: 413 (with Content-Length known up front)."""
        big = valid_submit(payload={"synthetic": True, "notes": "x" * MAX_BODY})
        await problem(await post(client, big), 413)

    async def test_a_chunked_body_over_the_limit_is_413(self, client: Client) -> None:
        """aiohttp's own limit on a body without Content-Length is mapped to a 413 problem."""

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1024

        headers = {**bearer(SEND), "Content-Type": "application/json"}
        response = await client.post("/v1/messages", data=chunks(), headers=headers)
        await problem(response, 413)

    async def test_an_invalid_payload_is_422_with_field_errors(self, client: Client) -> None:
        """The payload breaks its message type: 422 naming each field."""
        body = await problem(await post(client, valid_submit(payload={"synthetic": True})), 422)
        assert set(body["errors"]) == {"subject.name", "risk"}

    async def test_store_unavailable_is_503(self, client: Client, service: FakeService) -> None:
        """No durable outbox, no 202."""
        service.store_down = True
        await problem(await post(client, valid_submit()), 503)
        assert service.outbox == {}

    async def test_fail_closed_is_503(self, client: Client, service: FakeService) -> None:
        """Without a valid manifest the agent stops sending."""
        service.fail_closed = True
        await problem(await post(client, valid_submit()), 503)

    async def test_a_bug_is_an_opaque_logged_500(
        self, client: Client, service: FakeService, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected exception is a 500 problem; neither answer nor log holds its message."""
        service.bug = True
        with caplog.at_level(logging.ERROR, logger="agent.api"):
            response = await post(client, valid_submit())
        await problem(response, 500)
        assert "SYN-SECRET" not in await response.text()
        assert "RuntimeError" in caplog.text
        assert "SYN-SECRET" not in caplog.text


class TestPreview:
    async def test_permit_lists_shared_and_withheld(
        self, client: Client, service: FakeService
    ) -> None:
        """Preview says what would be shared, and stores nothing."""
        response = await post(client, valid_submit(), path="/v1/messages/preview")
        assert response.status == 200
        body = await response.json()
        assert body["decision"] == "PERMIT"
        assert body["shared_fields"] == ["risk", "subject.name"]
        assert service.outbox == {}

    async def test_deny_is_a_200_decision_not_an_error(self, client: Client) -> None:
        """A denial is the answer to a preview, with reasons."""
        response = await post(client, valid_submit(to="health"), path="/v1/messages/preview")
        body = await response.json()
        assert (response.status, body["decision"]) == (200, "DENY")
        assert body["reasons"]

    async def test_preview_validates_like_submit(self, client: Client) -> None:
        """Unknown fields are a 400 for preview too."""
        response = await post(client, valid_submit(extra=1), path="/v1/messages/preview")
        await problem(response, 400)

    async def test_preview_needs_send_scope(self, client: Client) -> None:
        """A receive-only client cannot preview."""
        response = await post(client, valid_submit(), token=RECEIVE, path="/v1/messages/preview")
        await problem(response, 403)
