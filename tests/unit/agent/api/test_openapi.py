"""The OpenAPI document matches the server: same routes, every status, problem+json errors."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from agent.api import create_app
from agent.api_models import SubmitRequest
from agent.openapi import OPERATIONS, Operation, build_openapi
from agent.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from federation.referrals import MESSAGE_TYPES, REQUIRED_ON_SUBMIT, parse_payload
from tests.unit.agent.api.conftest import CLIENTS
from tests.unit.agent.api.fake_service import FakeService

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

    def test_every_example_passes_the_servers_model_and_its_message_type(self) -> None:
        """Each documented example parses as a SubmitRequest and its payload as its type."""
        for name, example in _body("/v1/messages")["examples"].items():
            request = SubmitRequest.model_validate(example["value"])
            assert parse_payload(request.type, request.payload).synthetic is True, name


class TestReferralPayloads:
    """Issue 16.7: the payload was 'any object' and its one example was denied."""

    @pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/preview"])
    def test_payload_any_object_is_now_one_schema_per_message_type(self, path: str) -> None:
        """The body is a oneOf keyed by ``type``, one mapping entry per message type."""
        schema = _body(path)["schema"]
        mapping = schema["discriminator"]["mapping"]
        assert schema["discriminator"]["propertyName"] == "type"
        assert set(mapping) == set(MESSAGE_TYPES)
        assert [branch["$ref"] for branch in schema["oneOf"]] == list(mapping.values())

    def test_each_type_schema_fixes_type_and_refs_its_referral_schema(self) -> None:
        """SubmitPoliceConcern: ``type`` const police_concern, payload the PoliceConcern schema."""
        schema = DOC["components"]["schemas"]["SubmitPoliceConcern"]
        assert schema["properties"]["type"]["const"] == "police_concern"
        assert schema["properties"]["payload"]["$ref"] == "#/components/schemas/PoliceConcern"
        assert schema["additionalProperties"] is False

    def test_referral_schemas_name_what_a_sender_must_supply(self) -> None:
        """Each referral component carries x-required-on-submit from the federation core."""
        for message_type, model in MESSAGE_TYPES.items():
            component = DOC["components"]["schemas"][model.__name__]
            assert component["x-required-on-submit"] == list(REQUIRED_ON_SUBMIT[message_type])

    def test_every_example_is_valid_against_the_documented_body_schema(self) -> None:
        """Each example validates against the oneOf (JSON Schema 2020-12, refs resolved)."""
        for path in ("/v1/messages", "/v1/messages/preview"):
            media = _body(path)
            validator = jsonschema.Draft202012Validator({**DOC, **media["schema"]})
            for name, example in media["examples"].items():
                assert list(validator.iter_errors(example["value"])) == [], name

    def test_every_type_a_shipped_isa_carries_has_an_example(self) -> None:
        """Examples cover every message type except dash_risk_assessment (no ISA carries it)."""
        examples = _body("/v1/messages")["examples"]
        assert set(examples) == set(MESSAGE_TYPES) - {"dash_risk_assessment"}
        assert all(e["value"]["payload"]["synthetic"] is True for e in examples.values())

    def test_examples_are_the_same_on_every_build(self) -> None:
        """Examples are built deterministically (seeded synth), so the document is stable."""
        assert (
            build_openapi(max_body_bytes=1)["paths"]["/v1/messages"]
            == build_openapi(max_body_bytes=1)["paths"]["/v1/messages"]
        )


def _body(path: str) -> dict[str, Any]:
    media: dict[str, Any] = DOC["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return media

    def test_the_submit_schema_forbids_unknown_fields(self) -> None:
        """additionalProperties: false, as the server enforces."""
        assert DOC["components"]["schemas"]["SubmitRequest"]["additionalProperties"] is False
