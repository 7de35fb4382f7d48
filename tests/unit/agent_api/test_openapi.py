"""The OpenAPI document matches the server: same routes, every status, problem+json errors."""

from __future__ import annotations

import jsonschema  # type: ignore[import-untyped]
import pytest

from agent.api import create_app
from agent.api_models import SubmitRequest
from agent.openapi import OPERATIONS, Operation, build_openapi
from agent.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.unit.agent_api.conftest import CLIENTS
from tests.unit.agent_api.fake_service import FakeService

DOC = build_openapi(max_body_bytes=262144)


def documented_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOC["paths"].items() for method in item}


class TestRoutes:
    def test_the_server_serves_exactly_the_documented_operations(self) -> None:
        """Every route the app registers is documented, and every documented one is served."""
        app = create_app(FakeService(), CLIENTS)
        served = {
            (route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None
        }
        assert served == documented_routes()

    def test_every_operation_has_a_unique_id(self) -> None:
        """operationIds are unique, so clients can generate code from the document."""
        ids = [op.operation_id for op in OPERATIONS]
        assert len(ids) == len(set(ids))


class TestResponses:
    @pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
    def test_every_error_status_is_a_problem(self, op: Operation) -> None:
        """Each documented 4xx/5xx answers application/problem+json with the Problem schema."""
        responses = DOC["paths"][op.path][op.method]["responses"]
        errors = {code: r for code, r in responses.items() if int(code) >= 400}
        assert errors, "every operation documents its errors"
        for response in errors.values():
            schema = response["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}

    @pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
    def test_token_operations_document_401(self, op: Operation) -> None:
        """An operation that needs a token says it can answer 401, and one with a scope 403."""
        responses = DOC["paths"][op.path][op.method]["responses"]
        security = DOC["paths"][op.path][op.method]["security"]
        assert ("401" in responses) == bool(security)
        assert ("403" in responses) == bool(security and security[0]["bearer"])

    def test_submit_documents_every_design_status(self) -> None:
        """POST /v1/messages: 202, 400, 401, 403, 409, 413, 422, 503 as DESIGN lists them."""
        responses = DOC["paths"]["/v1/messages"]["post"]["responses"]
        assert set(responses) == {"202", "400", "401", "403", "409", "413", "422", "503"}

    def test_404_and_405_are_documented_as_problems(self) -> None:
        """Unknown paths and wrong methods have problem+json responses in components."""
        assert set(DOC["components"]["responses"]) == {"NotFound", "MethodNotAllowed"}

    def test_the_body_limit_is_stated(self) -> None:
        """The request body description names the configured limit."""
        body = DOC["paths"]["/v1/messages"]["post"]["requestBody"]
        assert "262144 bytes" in body["description"]


class TestWebhook:
    def test_the_webhook_push_is_documented_with_its_headers(self) -> None:
        """OpenAPI 3.1 ``webhooks`` describes the push: the body schema and the three headers."""
        push = DOC["webhooks"]["delivery"]["post"]
        headers = {p["name"] for p in push["parameters"] if p["in"] == "header"}
        assert headers == {SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_HEADER}
        body = push["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/WebhookDelivery"}


class TestSchemas:
    def test_component_schemas_are_valid_json_schema(self) -> None:
        """Every component schema is valid JSON Schema 2020-12 (OpenAPI 3.1's dialect)."""
        for schema in DOC["components"]["schemas"].values():
            jsonschema.Draft202012Validator.check_schema(schema)

    def test_the_submit_example_is_a_valid_request(self) -> None:
        """The documented example passes the server's own model."""
        example = DOC["components"]["schemas"]["SubmitRequest"]["examples"][0]
        assert SubmitRequest.model_validate(example).to == "assist"

    def test_the_submit_schema_forbids_unknown_fields(self) -> None:
        """additionalProperties: false, as the server enforces."""
        assert DOC["components"]["schemas"]["SubmitRequest"]["additionalProperties"] is False
