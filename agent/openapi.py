"""The local API's OpenAPI 3.1 document, built from the same pydantic models the server uses.

Rules:
1. Schemas come only from ``agent.api_models`` via pydantic's JSON Schema generation (request
   models in validation mode, responses in serialization mode), so they cannot drift.
2. :data:`OPERATIONS` is the one table of routes: method, path, scope, request body, success
   status and every error status each route can answer. ``agent/api.py`` registers exactly these
   routes, and the fuzz test (``tests/integration/test_api_fuzz.py``) checks that the server
   answers only documented statuses with bodies matching these schemas.
3. Errors are ``application/problem+json`` (:class:`~agent.api_models.Problem`). A path the API
   does not have answers 404, a method a path does not allow answers 405 with ``Allow``; both
   are problem+json and appear under ``components.responses``.
4. This module performs no I/O.
6. Where one status has several causes a client must tell apart (submit's 503), each cause is
   its own problem ``type`` (``urn:isa-relay:problem:<kind>``), listed in :data:`PROBLEM_TYPES`
   with an example each; a 403 on submit is only ever the ISA's decision.
5. Submit and preview bodies are a ``oneOf`` of one schema per referral message type, keyed by
   ``type``, with synthetic examples the dev federation accepts (``agent.openapi_referrals``).
7. Every authenticated operation documents the ``X-Actor-*`` headers (``agent.actor``) as
   header parameters, required as the agent requires them: with ``require_actor``, id and
   role on the operations about messages and reviews (``actor`` ``person``), and the
   justification too on disclosures (``justified``); optional where ``actor`` is ``optional``
   (the ISA list, the metrics) or ``require_actor`` is off; all three always for erasure, legal
   holds and a review's approve / narrow / return (``always``). Its 400 names the three actor
   problem types (one status for every actor problem: 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from agent.actor import (
    ACTOR_ID_HEADER,
    ACTOR_ID_PATTERN,
    ACTOR_ROLE_HEADER,
    ACTOR_ROLE_PATTERN,
    JUSTIFICATION_HEADER,
    JUSTIFICATION_PATTERN,
    MAX_JUSTIFICATION,
)
from agent.api_models import (
    DEFAULT_INBOX_LIMIT,
    ID_PATTERN,
    MAX_CURSOR,
    MAX_INBOX_LIMIT,
    ApproveRequest,
    CaseEventRequest,
    HealthResponse,
    InboxPage,
    IsaSummary,
    LivenessResponse,
    MessageStatusResponse,
    NarrowRequest,
    PreviewResponse,
    Problem,
    ReadinessResponse,
    ReturnRequest,
    ReviewPage,
    ReviewView,
    StatusEventPage,
    SubmitRequest,
    SubmitResponse,
    WebhookDelivery,
    WebhookStatusEvent,
)
from agent.openapi_referrals import (
    referral_body_schema,
    referral_examples,
    referral_models,
    referral_schemas,
)

__all__ = ["OPERATIONS", "PROBLEM_TYPES", "Operation", "build_openapi"]

_REF: Final = "#/components/schemas/{model}"

_ERROR_TEXT: Final = {
    400: "Malformed request: unknown or bad query parameters; for a body, wrong content type, "
    "invalid JSON, not an object, or unknown or mistyped fields (``errors`` names each); "
    "malformed actor headers (`request-invalid`, naming the header).",
    401: "Missing or invalid bearer token.",
    403: "The token lacks the scope (`forbidden`), or (submit) the ISA denies the referral "
    "(`denied`, with the ISA's ``reasons``); never for keys, certificates or the manifest.",
    404: "No such message, delivery or review (ids are lowercase UUIDs; any other id is not "
    "found).",
    409: "Conflict: the idempotency key was used before with a different body (submit), the "
    "delivery is under legal hold (erase: `urn:isa-relay:problem:legal-hold`), or the review "
    "is no longer pending (approve, narrow, return).",
    413: "The request body is larger than the configured limit.",
    422: "The payload does not match its message type (``errors`` maps field path to message).",
    503: "The agent cannot do this now: no durable store, no valid manifest (fail-closed) or "
    "no broker.",
}


@dataclass(frozen=True)
class Operation:
    """One route: what it needs, takes and answers."""

    method: Literal["get", "post", "put", "delete"]
    path: str
    operation_id: str
    summary: str
    scope: Literal["send", "receive", "admin", "any", "none"]
    success: int
    response: type[BaseModel] | Literal["isa-list", "metrics", "openapi", "empty"]
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    params: tuple[str, ...] = ()
    links: tuple[tuple[str, str, str], ...] = ()  # (name, operationId, id expression)
    #: rule 7: what the X-Actor-* headers must name under require_actor ("none": unauthenticated)
    actor: Literal["always", "justified", "person", "optional", "none"] = "none"


OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation("post", "/v1/messages", "submitMessage",
              "Submit a referral; 202 only once it is durably in the outbox. A REVIEW decision "
              "is 202 with status `review_pending`: held UNSENT for review (`id` is then the "
              "review's; the referral is not sent until a reviewer approves it).", "send",
              202, SubmitResponse, (400, 401, 403, 409, 413, 422, 503), body=SubmitRequest,
              links=(("GetMessage", "getMessage", "$response.body#/id"),), actor="justified"),
    Operation("post", "/v1/messages/preview", "previewMessage",
              "What would be shared and why; nothing is stored or sent.", "send",
              200, PreviewResponse, (400, 401, 403, 413, 422, 503), body=SubmitRequest,
              actor="person"),
    Operation("get", "/v1/messages/{id}", "getMessage",
              "Status, history and receipt of a sent message.", "send",
              200, MessageStatusResponse, (400, 401, 403, 404, 503), params=("id",),
              actor="person"),
    Operation("get", "/v1/inbox", "listInbox",
              "Verified, decrypted deliveries not yet acknowledged, oldest first.", "receive",
              200, InboxPage, (400, 401, 403, 503), params=("after", "limit"),
              links=(("AckFirstDelivery", "ackDelivery", "$response.body#/items/0/id"),),
              actor="justified"),
    Operation("post", "/v1/inbox/{id}/ack", "ackDelivery",
              "The case system has stored this delivery.", "receive",
              204, "empty", (400, 401, 403, 404, 503), params=("id",), actor="person"),
    Operation("post", "/v1/inbox/{id}/erase", "eraseDelivery",
              "Erasure on request: crypto-shred the delivery's payload now (audited with the "
              "person and the reason). Never under legal hold (409). Erasing again is 204.",
              "receive", 204, "empty", (400, 401, 403, 404, 409, 503), params=("id",),
              actor="always"),
    Operation("put", "/v1/inbox/{id}/hold", "placeLegalHold",
              "Place a legal hold: neither retention nor erasure shreds the payload until it "
              "is released (audited with the person and the reason).", "receive",
              204, "empty", (400, 401, 403, 404, 503), params=("id",), actor="always"),
    Operation("delete", "/v1/inbox/{id}/hold", "releaseLegalHold",
              "Release the legal hold: retention applies again at its next pass.", "receive",
              204, "empty", (400, 401, 403, 404, 503), params=("id",), actor="always"),
    Operation("post", "/v1/inbox/{id}/events", "reportCaseEvent",
              "The case system reports the delivery's case closed, or active, now; an ISA "
              "whose retention counts from that event starts its period then.", "receive",
              204, "empty", (400, 401, 403, 404, 413, 503), body=CaseEventRequest,
              params=("id",), actor="person"),
    Operation("get", "/v1/reviews", "listReviews",
              "Referrals held for review, pending, oldest first (what would leave, never a "
              "payload value); `overdue` once past the ISA's time limit.", "send",
              200, ReviewPage, (400, 401, 403, 503), params=("after", "limit"),
              links=(("GetFirstReview", "getReview", "$response.body#/items/0/id"),),
              actor="person"),
    Operation("get", "/v1/reviews/{id}", "getReview",
              "One review, whatever its status; once approved it names the message it sent.",
              "send", 200, ReviewView, (400, 401, 403, 404, 503), params=("id",),
              actor="person"),
    Operation("post", "/v1/reviews/{id}/approve", "approveReview",
              "Approve: the ISA decides again now (trust, certificates and the recipient's key "
              "as for a submit), then the referral is sealed and queued like a submit. A person "
              "with the ISA's reviewer role who did not submit it; a justification is required.",
              "send", 200, ReviewView, (400, 401, 403, 404, 409, 413, 422, 503),
              body=ApproveRequest, params=("id",),
              links=(("GetSentMessage", "getMessage", "$response.body#/message_id"),),
              actor="always"),
    Operation("post", "/v1/reviews/{id}/narrow", "narrowReview",
              "Withhold more fields (never fewer); it stays pending until approved.", "send",
              200, ReviewView, (400, 401, 403, 404, 409, 413, 422, 503), body=NarrowRequest,
              params=("id",), actor="always"),
    Operation("post", "/v1/reviews/{id}/return", "returnReview",
              "Return it to its submitter with a reason: it is never sent.", "send",
              200, ReviewView, (400, 401, 403, 404, 409, 413, 422, 503), body=ReturnRequest,
              params=("id",), actor="always"),
    Operation("get", "/v1/events", "listEvents",
              "Status events (delivered, rejected with its reason, expired, review pending / "
              "narrowed / approved / returned / overdue / expired), in order, cursor-paged; "
              "durable; no payload values. The webhook pushes the same events.", "send",
              200, StatusEventPage, (400, 401, 403, 503), params=("after", "limit"),
              actor="person"),
    Operation("get", "/v1/isas", "listIsas",
              "The ISAs this agency is party to, in plain English.", "any",
              200, "isa-list", (400, 401, 503), actor="optional"),
    Operation("get", "/livez", "liveness",
              "Liveness probe: the process, its event loop and its store answer (503: restart "
              "me). Never depends on the broker or the manifest.", "none",
              200, LivenessResponse, (400, 503)),
    Operation("get", "/readyz", "readiness",
              "Readiness probe: 503 names what stops submits now (no valid manifest: fail "
              "closed; our certificate not valid; no store). Broker down, or recipients "
              "without a current key or certificate, is 200 `degraded`.",
              "none", 200, ReadinessResponse, (400, 503)),
    Operation("get", "/healthz", "health",
              "Manifest, keys, broker, outbox depth; 503 when fail-closed or degraded by a "
              "fault (200 when degraded only by manifest.warning). Kept for existing monitors; "
              "probes use /livez and /readyz.", "none",
              200, HealthResponse, (400, 503)),
    Operation("get", "/metrics", "metrics",
              "Prometheus metrics (needs the admin scope).", "admin",
              200, "metrics", (400, 401, 403, 503), actor="optional"),
    Operation("get", "/v1/openapi.json", "openapi",
              "This document.", "none", 200, "openapi", (400,)),
)  # fmt: skip


_REVIEW_403: Final = (
    (
        "not-a-reviewer",
        "No person named (X-Actor-Id), or X-Actor-Role is not the reviewer "
        "role the ISA names for this referral. Nothing changed.",
    ),
    (
        "own-submission",
        "The person acting submitted this referral: someone else must review it. Nothing changed.",
    ),
    ("forbidden", "The token lacks the send scope."),
)
_REVIEW_409: Final = (
    (
        "review-settled",
        "The review was already approved (sent), returned or expired. Nothing changed.",
    ),
)

#: Rule 6: (path, status) -> the problem kinds it can answer, with what each means.
PROBLEM_TYPES: Final[dict[tuple[str, int], tuple[tuple[str, str], ...]]] = {
    ("/v1/messages", 422): (
        ("payload-invalid", "The payload does not match its message type (`errors`)."),
        ("actor-required", "The ISA holds this referral for review, which needs the person "
         "submitting it named (X-Actor-Id); or X-Actor-Role / X-Actor-Justification came "
         "without X-Actor-Id. Nothing was held or sent."),
    ),
    ("/v1/reviews/{id}/approve", 422): (
        ("actor-required", "No justification (body `justification` or "
         "X-Actor-Justification), or a role without X-Actor-Id. Nothing changed."),
    ),
    ("/v1/reviews/{id}/approve", 403): (
        *_REVIEW_403,
        ("denied", "Decided again now, the ISA no longer lets it leave (with its `reasons`). "
         "The review stays pending."),
    ),
    ("/v1/reviews/{id}/approve", 409): _REVIEW_409,
    ("/v1/reviews/{id}/narrow", 403): _REVIEW_403,
    ("/v1/reviews/{id}/narrow", 409): _REVIEW_409,
    ("/v1/reviews/{id}/narrow", 422): (
        ("narrowing-widens", "A field named would not leave (the decision withheld it, or the "
         "referral does not hold it): a narrowing only withholds more (`errors`)."),
        ("narrowing-invalid", "No field left, or a field the message type requires left out "
         "(`errors`): return the referral instead."),
        ("actor-required", "No justification, or a role without X-Actor-Id. Nothing changed."),
    ),
    ("/v1/reviews/{id}/return", 422): (
        ("actor-required", "X-Actor-Role or X-Actor-Justification without X-Actor-Id."),
    ),
    ("/v1/reviews/{id}/return", 403): _REVIEW_403,
    ("/v1/reviews/{id}/return", 409): _REVIEW_409,
    ("/v1/reviews/{id}/approve", 503): (
        ("store-unavailable", "The agent cannot store durably: nothing changed."),
        ("trust-unavailable", "As for a submit; the review stays pending."),
        ("sender-certificate-expired", "As for a submit; the review stays pending."),
        ("recipient-key-unavailable", "As for a submit; the review stays pending."),
        ("recipient-certificate-expired", "As for a submit; the review stays pending."),
    ),
    ("/v1/messages", 503): (
        ("store-unavailable", "The agent cannot store durably: nothing was accepted."),
        ("trust-unavailable", "No valid federation manifest (fail closed), or our copy of the "
         "ISA differs from the federation's. `Retry-After`: the manifest poll interval."),
        ("sender-certificate-expired", "Our own agency certificate is expired, revoked or not "
         "in the manifest: every recipient would reject the referral. No `Retry-After`: it "
         "needs the agency's certificate renewal."),
        ("recipient-key-unavailable", "The recipient has no current, non-revoked encryption "
         "key announced in the manifest (or is not listed, or is revoked). `Retry-After`: the "
         "manifest poll interval."),
        ("recipient-certificate-expired", "The recipient's certificate is not valid now. "
         "`Retry-After`: the manifest poll interval."),
    ),
}  # fmt: skip


def build_openapi(*, max_body_bytes: int, require_actor: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the API as configured (the body limit, and whether calls
    must name the person acting, are documented)."""
    schemas = _component_schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, max_body_bytes, require_actor)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ISA Relay agent API",
            "version": "1",
            "description": _INFO,
        },
        "paths": paths,
        "webhooks": {"delivery": _WEBHOOK, "status": _STATUS_WEBHOOK},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Per-client token; roles (scopes): send, receive, admin.",
                }
            },
            "responses": {
                "NotFound": _problem(404, "No such path (any unknown URL)."),
                "MethodNotAllowed": {
                    **_problem(405, "The path exists but not with this method."),
                    "headers": {"Allow": {"schema": {"type": "string"}}},
                },
            },
        },
    }


_INFO: Final = (
    "The local API of an ISA Relay agent, for the agency's own case systems.\n\n"
    "Errors are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, "
    "`detail`, and `errors` (field path -> message) or `reasons` (the ISA's) where present. "
    "Any unknown path answers 404 and a known path with another method answers 405 (with "
    "`Allow`), both as problem+json (see `components.responses`)."
)


def _component_schemas() -> dict[str, Any]:
    responses: tuple[type[BaseModel], ...] = (
        SubmitResponse,
        PreviewResponse,
        MessageStatusResponse,
        InboxPage,
        IsaSummary,
        HealthResponse,
        LivenessResponse,
        ReadinessResponse,
        Problem,
        WebhookDelivery,
        ReviewView,
        ReviewPage,
        StatusEventPage,
        WebhookStatusEvent,
    )
    requests: tuple[type[BaseModel], ...] = (
        CaseEventRequest,
        ApproveRequest,
        NarrowRequest,
        ReturnRequest,
    )
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(SubmitRequest, "validation")]
    models += [(m, "validation") for m in requests]
    models += [(m, "validation") for m in referral_models()]
    models += [(m, "serialization") for m in responses]
    _, top = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    schemas.update(referral_schemas(schemas, _REF, SubmitRequest.__name__))
    return schemas


def _operation(op: Operation, max_body_bytes: int, require_actor: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    out["security"] = _security(op.scope)
    parameters = [_PARAMETERS[name] for name in op.params] + _actor_parameters(op, require_actor)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "description": f"JSON object, at most {max_body_bytes} bytes.",
            "content": {"application/json": _body_media(op.body)},
        }
    responses: dict[str, Any] = {str(op.success): _success(op)}
    for status in op.errors:
        responses[str(status)] = _problem(status, _ERROR_TEXT[status])
    for status, kinds in ((st, k) for (path, st), k in PROBLEM_TYPES.items() if path == op.path):
        _list_problem_types(responses[str(status)], status, kinds)
    if op.actor != "none":
        responses["400"]["description"] += _ACTOR_PROBLEMS
    if op.path in _SELF_DESCRIBING_503:
        schema = {"$ref": _ref(_SELF_DESCRIBING_503[op.path])}
        responses["503"]["content"]["application/json"] = {"schema": schema}
    out["responses"] = responses
    return out


#: Probes whose 503 is their own JSON body (what is wrong), besides problem+json for bad state.
_SELF_DESCRIBING_503: Final[dict[str, type[BaseModel]]] = {
    "/healthz": HealthResponse,
    "/readyz": ReadinessResponse,
}


def _body_media(body: type[BaseModel]) -> dict[str, Any]:
    """A referral body is one schema per message type with examples (rule 5); others a $ref."""
    if body is SubmitRequest:
        return {"schema": referral_body_schema(_REF), "examples": referral_examples()}
    return {"schema": {"$ref": _ref(body)}}


def _security(scope: str) -> list[dict[str, list[str]]]:
    if scope == "none":
        return []
    return [{"bearer": [] if scope == "any" else [scope]}]


def _success(op: Operation) -> dict[str, Any]:
    if op.response == "empty":
        return {"description": "Done."}
    if op.response == "metrics":
        return {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if op.response == "openapi":
        return {"description": "This document.", "content": {"application/json": {"schema": {
            "type": "object"}}}}  # fmt: skip
    if op.response == "isa-list":
        schema: dict[str, Any] = {"type": "array", "items": {"$ref": _ref(IsaSummary)}}
    else:
        schema = {"$ref": _ref(op.response)}
    answer: dict[str, Any] = {
        "description": "OK.",
        "content": {"application/json": {"schema": schema}},
    }
    if op.success == 202:
        answer["headers"] = {"Location": {"schema": {"type": "string"}}}
    if op.links:
        answer["links"] = {
            name: {"operationId": target, "parameters": {"id": expression}}
            for name, target, expression in op.links
        }
    return answer


def _problem(status: int, text: str) -> dict[str, Any]:
    content = {"application/problem+json": {"schema": {"$ref": _ref(Problem)}}}
    answer: dict[str, Any] = {"description": text, "content": content}
    if status == 401:
        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return answer


def _list_problem_types(
    answer: dict[str, Any], status: int, kinds: tuple[tuple[str, str], ...]
) -> None:
    """Rule 6: name each problem type of ``answer`` in its text, with an example each."""
    lines = "".join(f"\n- `urn:isa-relay:problem:{kind}`: {text}" for kind, text in kinds)
    answer["description"] += " Problem types:" + lines
    answer["content"]["application/problem+json"]["examples"] = {
        kind: {"value": {"type": f"urn:isa-relay:problem:{kind}", "title": kind.replace("-", " "),
                         "status": status, "detail": text.split(".")[0] + "."}}
        for kind, text in kinds
    }  # fmt: skip
    answer["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before retrying, where a retry can succeed.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }


def _ref(model: type[BaseModel]) -> str:
    return _REF.format(model=model.__name__)


_PARAMETERS: Final[dict[str, dict[str, Any]]] = {
    "id": {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "after": {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "Return items with a cursor greater than this (default 0).",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR, "default": 0},
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"At most this many items (1..{MAX_INBOX_LIMIT}, "
        f"default {DEFAULT_INBOX_LIMIT}).",
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_INBOX_LIMIT,
            "default": DEFAULT_INBOX_LIMIT,
        },
    },
}


_ACTOR_PROBLEMS: Final = (
    " Or an actor header problem: `urn:isa-relay:problem:actor-invalid` (an `X-Actor-*` "
    "header malformed, repeated, or id without role), `urn:isa-relay:problem:actor-required` "
    "(no person named where one must be: the setting, an ISA's s62 flow, or a submit the ISA "
    "holds for review, which needs its submitter) or "
    "`urn:isa-relay:problem:justification-required` (a disclosure or a review act without "
    "`X-Actor-Justification`)."
)


def _actor_parameters(op: Operation, require_actor: bool) -> list[dict[str, Any]]:
    """Rule 7: the X-Actor-* header parameters of ``op``, required as the agent requires."""
    if op.actor == "none":
        return []
    person = op.actor == "always" or (require_actor and op.actor in ("person", "justified"))
    justified = op.actor == "always" or (require_actor and op.actor == "justified")
    return [
        {"name": ACTOR_ID_HEADER, "in": "header", "required": person,
         "description": "The person acting: their staff identifier (payroll number or "
         "directory id), never a name or e-mail address. Recorded in every audit entry the "
         "call causes; without it (where allowed) the call is recorded as "
         "`system:<client>`. Comes with " + ACTOR_ROLE_HEADER + ".",
         "schema": {"type": "string", "pattern": ACTOR_ID_PATTERN, "maxLength": 64}},
        {"name": ACTOR_ROLE_HEADER, "in": "header", "required": person,
         "description": "The role they act in, a code such as `idva`, `case_worker`, "
         "`marac_coordinator`, `dpo`. Comes with " + ACTOR_ID_HEADER + ".",
         "schema": {"type": "string", "pattern": ACTOR_ROLE_PATTERN, "maxLength": 40}},
        {"name": JUSTIFICATION_HEADER, "in": "header", "required": justified,
         "description": "Why (DPA 2018 s62): the reason for this disclosure or consultation, "
         "by reference (statutory gateway, purpose, the case system's case reference); no "
         "name, date of birth or address, as it is copied into the audit log. Required for "
         "disclosures (submit, inbox) where the agent requires a person, under an ISA "
         "flow with `log: dpa2018_s62`, and for a review's approve, narrow and return "
         "always (a body `justification` then replaces it for that act).",
         "schema": {"type": "string", "pattern": JUSTIFICATION_PATTERN,
                    "maxLength": MAX_JUSTIFICATION}},
    ]  # fmt: skip


def _header(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "description": text,
        "schema": {"type": "string"},
    }


#: What the agent POSTs to the case system's webhook, if one is configured (agent.webhook).
_WEBHOOK: Final[dict[str, Any]] = {
    "post": {
        "summary": "A verified, decrypted delivery, pushed; retried until a 2xx, never dropped.",
        "parameters": [
            _header(
                "X-ISA-Relay-Signature",
                "sha256=<hex HMAC-SHA256 of the exact body bytes with the shared secret>.",
            ),
            _header("X-ISA-Relay-Timestamp", "UTC YYYY-MM-DDTHH:MM:SSZ; equals sent_at."),
            _header("X-ISA-Relay-Delivery", "The delivery id: de-duplicate on it."),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _ref(WebhookDelivery)}}},
        },
        "responses": {
            "2XX": {"description": "Taken: the delivery is marked delivered."},
            "default": {"description": "Anything else (or no answer): retried with backoff."},
        },
    }
}


#: The status events the agent POSTs to the same webhook ([webhook] status_events).
_STATUS_WEBHOOK: Final[dict[str, Any]] = {
    "post": {
        "summary": "A status event (delivered, rejected, expired, a review's), pushed in order; "
        "retried until a 2xx, never dropped. The body's `event` is `status` (a delivery's is "
        "`delivery`).",
        "parameters": [
            _header(
                "X-ISA-Relay-Signature",
                "sha256=<hex HMAC-SHA256 of the exact body bytes with the shared secret>.",
            ),
            _header("X-ISA-Relay-Timestamp", "UTC YYYY-MM-DDTHH:MM:SSZ; equals sent_at."),
            _header("X-ISA-Relay-Delivery", "The event id: de-duplicate on it."),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _ref(WebhookStatusEvent)}}},
        },
        "responses": {
            "2XX": {"description": "Taken: the event is not pushed again."},
            "default": {"description": "Anything else (or no answer): retried with backoff."},
        },
    }
}
