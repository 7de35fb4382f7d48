"""The local API's wire models and the :class:`AgentService` protocol the HTTP layer calls.

Rules:
1. Every model is strict and frozen; requests reject unknown fields (``extra="forbid"``), so a
   typo in a field name is a 400, never a silently ignored value.
2. These models are the single source of truth for the OpenAPI document (``agent/openapi.py``
   builds it from ``model_json_schema``), so the document cannot drift from the server.
3. Times are UTC strings ``YYYY-MM-DDTHH:MM:SSZ`` (``federation.canonical.format_time``).
4. Responses carry field *paths* and reasons, never payload values, except the inbox, whose job
   is to hand verified, decrypted payloads to the agency's own case system.
5. Request bodies are parsed strictly (:func:`parse_request`): UTF-8 JSON without NaN or
   duplicate keys, an object, nested at most :data:`MAX_JSON_DEPTH` deep, strings encodable as
   UTF-8 (no lone surrogates), then the model. Every failure is a 400 naming field paths only.
6. The HTTP layer never touches the store, the ISA engine or the broker itself: it calls an
   :class:`AgentService`. Errors travel as :mod:`agent.errors` / :mod:`federation.errors`
   exceptions and become ``application/problem+json`` at the boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.actor import Caller
from agent.errors import BadRequest

__all__ = [
    "DEFAULT_INBOX_LIMIT",
    "ID_PATTERN",
    "MAX_CURSOR",
    "MAX_INBOX_LIMIT",
    "MAX_JSON_DEPTH",
    "TIME_PATTERN",
    "AgentService",
    "ApproveRequest",
    "BrokerHealth",
    "CaseEventRequest",
    "CertificateHealth",
    "HealthResponse",
    "HistoryEntry",
    "InboxItem",
    "InboxPage",
    "IsaFlowSummary",
    "IsaRef",
    "IsaSummary",
    "KeyHealth",
    "LivenessResponse",
    "ManifestHealth",
    "MessageStatusResponse",
    "NarrowRequest",
    "PreviewResponse",
    "ProbeCheck",
    "ProbeFinding",
    "Problem",
    "ReadinessResponse",
    "ReceiptView",
    "RequestInvalid",
    "ReturnRequest",
    "ReviewPage",
    "ReviewView",
    "StatusEventPage",
    "StatusEventView",
    "SubmitRequest",
    "SubmitResponse",
    "UnreachableRecipient",
    "WebhookDelivery",
    "WebhookStatusEvent",
    "WithheldField",
    "parse_json_object",
    "parse_request",
]

MAX_INBOX_LIMIT: Final = 500
MAX_JSON_DEPTH: Final = 64
DEFAULT_INBOX_LIMIT: Final = 100
MAX_CURSOR: Final = 2**63 - 1
#: Message and delivery ids are lowercase UUIDs (envelope ids are UUIDv7).
ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TIME_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
_AGENCY_PATTERN: Final = r"^[a-z][a-z0-9-]{1,62}$"
_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

M = TypeVar("M", bound=BaseModel)
Decision = Literal["PERMIT", "DENY", "REVIEW"]
MessageStatus = Literal["queued", "sent", "delivered", "rejected", "expired"]
#: A submit's answer: a message's status, or (REVIEW) where the review holding it stands.
SubmitStatus = MessageStatus | Literal["review_pending", "review_returned", "review_expired"]
ReviewStatus = Literal["pending", "approved", "returned", "expired"]
StatusEventKind = Literal[
    "delivered", "rejected", "expired", "review_pending", "review_narrowed", "review_approved",
    "review_returned", "review_overdue", "review_expired",
]  # fmt: skip
Risk = Literal["standard", "medium", "high"]
_JUSTIFICATION = Field(
    default=None,
    min_length=1,
    max_length=500,
    description="Why the reviewer acts, for the audit log (else the X-Actor-Justification "
    "header; one of them is required).",
)


class _Wire(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, validate_by_name=True, serialize_by_alias=True
    )


# --- requests ------------------------------------------------------------------------------


class SubmitRequest(_Wire):
    """A referral from the case system: who to, under which ISA, for what, and the payload.

    The OpenAPI document narrows ``type`` and ``payload`` per message type, with examples
    (``agent.openapi_referrals``)."""

    to: str = Field(pattern=_AGENCY_PATTERN, description="Recipient agency id.")
    isa: str = Field(pattern=_NAME_PATTERN, description="ISA id governing this flow.")
    purpose: str = Field(pattern=_NAME_PATTERN, description="Purpose code named in the ISA.")
    type: str = Field(pattern=_NAME_PATTERN, description="Message type, e.g. marac_referral.")
    payload: dict[str, Any] = Field(description="The referral (JSON object) before minimisation.")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Resubmitting the same body with the same key returns the first answer.",
    )


class CaseEventRequest(_Wire):
    """What the case system reports about the case a delivery belongs to."""

    event: Literal["case_closed", "activity"] = Field(
        description="case_closed: the case was closed now; activity: it was worked on now. "
        "An ISA whose retention counts from either starts its period then."
    )


class ApproveRequest(_Wire):
    """Approve a referral held for review: it is decided again now and, if still allowed, sent."""

    justification: str | None = _JUSTIFICATION


class NarrowRequest(_Wire):
    """Withhold more: ``shared_fields`` are the fields that will leave, a subset of those the
    review shares now (naming any other is 422 ``narrowing-widens``). It stays pending."""

    shared_fields: list[str] = Field(max_length=1000)
    justification: str | None = _JUSTIFICATION


class ReturnRequest(_Wire):
    """Return the referral to its submitter, with a reason: it is never sent."""

    reason: str = Field(min_length=1, max_length=500, description="Why, for the submitter.")


# --- responses -----------------------------------------------------------------------------


class WithheldField(_Wire):
    path: str
    reason: str


class SubmitResponse(_Wire):
    """202: the message is durably in the outbox (never answered before that), or, for a REVIEW
    decision, status ``review_pending``: held UNSENT in this agent's review queue until a
    reviewer approves it. Then ``id`` is the review's id (``GET /v1/reviews/{id}``), not a
    message's: a case system must not treat it as sent. The review names the message it sent
    once approved (and the status events say so)."""

    id: str
    status: SubmitStatus
    shared_fields: list[str]
    withheld_fields: list[WithheldField]
    review_id: str | None = Field(
        default=None, description="Set when the referral is held for review (its id)."
    )


class PreviewResponse(_Wire):
    """What would be shared and why; nothing is stored or sent."""

    decision: Decision
    shared_fields: list[str]
    withheld_fields: list[WithheldField]
    reasons: list[str]


class HistoryEntry(_Wire):
    at: str = Field(pattern=TIME_PATTERN)
    status: str
    detail: str


class ReceiptView(_Wire):
    status: Literal["delivered", "rejected"]
    reason: str | None
    at: str = Field(pattern=TIME_PATTERN)
    verified: bool


class MessageStatusResponse(_Wire):
    id: str
    status: MessageStatus
    to: str
    type: str
    isa: str
    purpose: str
    created_at: str = Field(pattern=TIME_PATTERN)
    history: list[HistoryEntry]
    receipt: ReceiptView | None


class IsaRef(_Wire):
    id: str
    version: str


class InboxItem(_Wire):
    """One verified, decrypted delivery with the header fields the case system needs."""

    id: str
    cursor: int = Field(ge=1)
    from_: str = Field(alias="from")
    type: str
    isa: IsaRef
    purpose: str
    lawful_basis: dict[str, Any]
    risk: Risk
    handling: list[str]
    received_at: str = Field(pattern=TIME_PATTERN)
    payload: dict[str, Any]


class InboxPage(_Wire):
    """``next_cursor`` is the ``after`` to ask with next (unchanged when the page is empty)."""

    items: list[InboxItem]
    next_cursor: int = Field(ge=0)


class IsaFlowSummary(_Wire):
    from_: str = Field(alias="from")
    to: str
    purpose: str
    types: list[str]


class IsaSummary(_Wire):
    id: str
    version: str
    title: str
    parties: list[str]
    active: bool
    valid_until: str | None
    summary: str = Field(description="Plain-English summary for practitioners.")
    flows: list[IsaFlowSummary]


class ManifestHealth(_Wire):
    valid: bool
    serial: int | None
    expires_at: str | None
    error: str | None = Field(
        default=None, description="Why the last manifest offered was refused or unreachable."
    )
    warning: str | None = Field(
        default=None,
        description="Set within [trust] manifest_alert_hours of the manifest's expiry (status "
        "degraded, still 200) and once it has expired (fail_closed): what to do about it.",
    )


class KeyHealth(_Wire):
    valid: bool
    detail: str


class BrokerHealth(_Wire):
    connected: bool


class CertificateHealth(_Wire):
    """Our own agency certificate as the manifest certifies it (``federation.sending`` rule 1)."""

    valid: bool = Field(description="False: recipients would reject every envelope; fail closed.")
    detail: str


class UnreachableRecipient(_Wire):
    """A recipient of our ISA flows that nothing can be sent to now (submits to it answer 503)."""

    agency: str
    cause: Literal["recipient_key_unavailable", "recipient_certificate_expired"]
    detail: str


class HealthResponse(_Wire):
    """No personal data. The endpoint answers 200 when everything works (``ok``, or
    ``degraded`` by an early warning only: the manifest near its expiry), else 503."""

    status: Literal["ok", "degraded", "fail_closed"]
    manifest: ManifestHealth
    keys: KeyHealth
    broker: BrokerHealth
    outbox_depth: int = Field(ge=0)
    certificate: CertificateHealth
    unreachable_recipients: list[UnreachableRecipient] = Field(
        default_factory=list,
        description="Recipients submits to would answer 503 now: the agent is degraded.",
    )

    @property
    def http_status(self) -> int:
        """200 while the manifest, the keys and the broker all work; 503 otherwise."""
        working = self.manifest.valid and self.keys.valid and self.broker.connected
        return 200 if working else 503


#: What a readiness finding is about (``GET /readyz``).
ProbeCheck = Literal["manifest", "store", "broker", "keys", "certificate", "recipients"]


class LivenessResponse(_Wire):
    """``GET /livez``: the process, its event loop and its store answer."""

    status: Literal["alive"] = "alive"


class ProbeFinding(_Wire):
    check: ProbeCheck
    detail: str = Field(description="Why, in plain English; no personal data.")


class ReadinessResponse(_Wire):
    """``GET /readyz``: 200 while ``ready`` or ``degraded``, 503 while ``not_ready``.

    ``missing`` stops the agent doing its job now (submits would answer 503): no valid manifest
    (fail closed), our own certificate not valid, or no durable store. ``degraded`` is down but
    costs nothing accepted: with the broker unreachable, submits still go durably into the
    outbox and are sent on reconnection; ``recipients`` names those nothing can be sealed for
    now (submits to them answer 503, to the others 202).
    """

    status: Literal["ready", "degraded", "not_ready"]
    missing: list[ProbeFinding]
    degraded: list[ProbeFinding]


class WebhookDelivery(_Wire):
    """The body POSTed to the case system's webhook, signed (see :mod:`agent.webhook`)."""

    event: Literal["delivery"] = "delivery"
    sent_at: str = Field(pattern=TIME_PATTERN, description="Also the X-ISA-Relay-Timestamp.")
    delivery: InboxItem


class ReviewView(_Wire):
    """A referral held for review: what would leave if it is approved now and why, never a
    payload value. ``shared_fields`` already reflects any narrowing; the ISA decides again at
    approval, so what leaves then is at most these."""

    id: str
    cursor: int = Field(ge=1)
    status: ReviewStatus
    overdue: bool = Field(description="Pending past due_at: escalated.")
    to: str
    isa: IsaRef
    purpose: str
    type: str
    risk: Risk
    submitted_by: str = Field(description="The person who submitted it (X-Actor-Id).")
    reviewer_role: str = Field(description="The role a reviewer must hold (the ISA's).")
    held_at: str = Field(pattern=TIME_PATTERN)
    due_at: str = Field(pattern=TIME_PATTERN)
    expires_at: str = Field(pattern=TIME_PATTERN)
    escalated_at: str | None
    shared_fields: list[str]
    withheld_fields: list[WithheldField]
    narrowed: bool
    reasons: list[str]
    decided_at: str | None
    decided_by: str | None = Field(description="client/person who approved or returned it.")
    return_reason: str | None
    message_id: str | None = Field(description="The message an approval sent.")


class ReviewPage(_Wire):
    """Pending reviews, oldest first; ``next_cursor`` is the ``after`` to ask with next."""

    items: list[ReviewView]
    next_cursor: int = Field(ge=0)


class StatusEventView(_Wire):
    """One status event about a message or a review of this agency; no payload values."""

    cursor: int = Field(ge=1)
    id: str = Field(description="Unique: de-duplicate on it.")
    event: StatusEventKind
    at: str = Field(pattern=TIME_PATTERN)
    client: str = Field(description="The API client that submitted the referral.")
    message_id: str | None
    review_id: str | None
    to: str
    isa: str | None
    purpose: str | None
    type: str | None
    reason: str | None = Field(
        description="rejected: the recipient's reason code; expired: why; review_returned: "
        "the reviewer's reason."
    )


class StatusEventPage(_Wire):
    """Events with ``cursor > after``, in order; ``next_cursor`` is the ``after`` to ask with
    next (unchanged when the page is empty)."""

    items: list[StatusEventView]
    next_cursor: int = Field(ge=0)


class WebhookStatusEvent(_Wire):
    """A status event POSTed to the case system's webhook, signed (see :mod:`agent.webhook`)."""

    event: Literal["status"] = "status"
    sent_at: str = Field(pattern=TIME_PATTERN, description="Also the X-ISA-Relay-Timestamp.")
    status: StatusEventView


class Problem(_Wire):
    """RFC 9457 problem details; ``errors`` maps field path to message, ``reasons`` is the ISA's."""

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: dict[str, str] | None = None
    reasons: list[str] | None = None


# --- request bodies: bytes -> model, strictly -----------------------------------------------


class RequestInvalid(BadRequest):
    """A 400 with field errors ``{path: message}`` (a request that does not match its model)."""

    def __init__(self, message: str, errors: Mapping[str, str]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, an object, bounded nesting."""
    try:
        obj = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constants,
        )
    except _DuplicateKey:
        raise BadRequest("the JSON body has a duplicate key") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the body is not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("the JSON body must be an object")
    if nested_deeper_than(body, MAX_JSON_DEPTH):
        raise BadRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(body):  # only a \uD800-\uDFFF escape can make one: then look
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("the JSON body contains an unpaired surrogate escape") from None
    return obj


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: fast in C
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether the objects and arrays of a VALID JSON text nest deeper than ``limit`` levels:
    a scan of its brackets (strings removed first), not a walk over every parsed value."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False  # too few brackets, even counting those in strings, to nest that deep
    skeleton = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    level = 0
    for byte in skeleton:
        level += 1 if byte in b"[{" else -1
        if level > limit:
            return True
    return False


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def parse_request(model: type[M], body: bytes) -> M:
    """Strict JSON (:func:`parse_json_object`), then the strict model; every failure is a 400."""
    obj = parse_json_object(body)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        errors = {
            _path(err["loc"]): str(err["msg"])[:200]
            for err in exc.errors(include_url=False, include_input=False)
        }
        raise RequestInvalid("the request does not match its schema", errors) from None


def _path(loc: tuple[int | str, ...]) -> str:
    return (".".join(str(part) for part in loc) or "(body)")[:200]


# --- the service the HTTP layer calls ------------------------------------------------------


class AgentService(Protocol):
    """What the agent does; the HTTP layer only authenticates, parses, calls and maps errors.

    Every method may raise the errors of :mod:`agent.errors` or :mod:`federation.errors`;
    they are mapped to problem+json. Anything else is a bug (logged 500).

    Every method an authenticated client calls takes its :class:`~agent.actor.Caller` (the
    client and the person it acts for) and records them in the audit log (DPA 2018 s62); the
    probes take none and record nothing.
    """

    async def submit(self, caller: Caller, req: SubmitRequest) -> SubmitResponse:
        """Minimise, seal and store in the outbox; return only once durable. A REVIEW decision
        is held unsent for review (status ``review_pending``); it needs the caller's person.

        Raises Denied (403, with reasons), ActorRequired (400), PayloadInvalid (422),
        IdempotencyConflict (409), StoreUnavailable / TrustUnavailable (503).
        """
        ...

    async def reviews(self, caller: Caller, after: int, limit: int) -> ReviewPage:
        """Pending reviews with ``cursor > after``, oldest first, at most ``limit``."""
        ...

    async def review(self, caller: Caller, id: str) -> ReviewView:
        """One review, whatever its status. Raises NotFound."""
        ...

    async def approve_review(self, caller: Caller, id: str, req: ApproveRequest) -> ReviewView:
        """Decide again and send (``federation.review`` rules 1, 2, 4). Raises NotFound,
        NotAReviewer / OwnSubmission / Denied (403), ReviewSettled (409), the submit's 503s."""
        ...

    async def narrow_review(self, caller: Caller, id: str, req: NarrowRequest) -> ReviewView:
        """Withhold more (rule 3). Raises NotFound, 403s, ReviewSettled, NarrowingInvalid."""
        ...

    async def return_review(self, caller: Caller, id: str, req: ReturnRequest) -> ReviewView:
        """Return it with a reason: never sent. Raises NotFound, 403s, ReviewSettled."""
        ...

    async def events(self, caller: Caller, after: int, limit: int) -> StatusEventPage:
        """Status events with ``cursor > after``, in order, at most ``limit``."""
        ...

    async def preview(self, caller: Caller, req: SubmitRequest) -> PreviewResponse:
        """Evaluate the ISA without storing or sending. Raises PayloadInvalid (422)."""
        ...

    async def message(self, caller: Caller, id: str) -> MessageStatusResponse:
        """Status, history and receipt of one sent message. Raises NotFound."""
        ...

    async def inbox(self, caller: Caller, after: int, limit: int) -> InboxPage:
        """Unacknowledged deliveries with ``cursor > after``, oldest first, at most ``limit``.

        ``caller`` (the API client reading them, and its person) is audited as the one who
        consulted the data (DPA 2018 s62)."""
        ...

    async def ack(self, caller: Caller, id: str) -> None:
        """``caller`` has the delivery. Raises NotFound. Acking twice is fine."""
        ...

    async def erase(self, caller: Caller, id: str) -> None:
        """Erasure on request: shred the delivery's payload now. Raises NotFound, LegalHold
        (409), ActorRequired / JustificationRequired (400)."""
        ...

    async def legal_hold(self, caller: Caller, id: str, held: bool) -> None:
        """Place (``held``) or release a legal hold on a delivery. Raises NotFound."""
        ...

    async def case_event(
        self, caller: Caller, id: str, event: Literal["case_closed", "activity"]
    ) -> None:
        """The case system reports the delivery's case closed, or active, now. NotFound."""
        ...

    async def isas(self, caller: Caller) -> list[IsaSummary]:
        """The ISAs this agency is party to."""
        ...

    async def health(self) -> HealthResponse:
        """Manifest, keys, broker and outbox depth; never raises for an unhealthy state."""
        ...

    async def metrics_text(self, caller: Caller) -> str:
        """Prometheus text exposition format 0.0.4."""
        ...

    async def liveness(self) -> LivenessResponse:
        """Alive when the store answers a read; raises StoreUnavailable when it cannot."""
        ...

    async def readiness(self) -> ReadinessResponse:
        """What stops (or only slows) the agent doing its job now; never raises for that."""
        ...
