"""An in-memory :class:`~agent.api_models.AgentService` for the HTTP layer's tests (synthetic).

It follows the contract the real service must keep, with a toy ISA:

- ISA ``SYN-ISA-1`` lets ``police`` send ``marac_referral`` to ``assist`` for purpose
  ``marac``; it shares ``subject.name`` and ``risk`` and withholds everything else.
  Any other ISA, recipient, type or purpose is denied (deny by default).
- A ``marac_referral`` payload needs ``subject`` (an object with a string ``name``) and ``risk``
  (``standard``|``medium``|``high``); otherwise :class:`PayloadInvalid` with field errors.
  Payloads of the other message types are checked by the real ``parse_payload`` (pure core),
  so a payload that breaks its type's documented schema is a 422, as with the real agent.
- One referral is held for review from the start (``REVIEW_ID``, submitted by ``SYN-worker-1``,
  reviewer role ``marac_reviewer``); approve, narrow and return keep the real rules
  (``federation.review``), and each act is a status event of ``events``.
- Flags make it misbehave the way a real agent can: ``store_down`` (503 on submit),
  ``fail_closed`` (503 on submit, health ``fail_closed``), ``bug`` (a RuntimeError anywhere).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any, Literal

from agent.actor import Caller, require_accountable
from agent.api_models import (
    ApproveRequest,
    BrokerHealth,
    CertificateHealth,
    HealthResponse,
    HistoryEntry,
    InboxItem,
    InboxPage,
    IsaFlowSummary,
    IsaRef,
    IsaSummary,
    KeyHealth,
    LivenessResponse,
    ManifestHealth,
    MessageStatusResponse,
    NarrowRequest,
    PreviewResponse,
    ReadinessResponse,
    ReturnRequest,
    ReviewPage,
    ReviewView,
    StatusEventPage,
    StatusEventView,
    SubmitRequest,
    SubmitResponse,
    WithheldField,
)
from agent.errors import (
    Denied,
    IdempotencyConflict,
    LegalHold,
    NotFound,
    StoreUnavailable,
    TrustUnavailable,
)
from agent.probes import ReadinessFacts, judge_readiness
from federation.errors import PayloadInvalid
from federation.referrals import parse_payload
from federation.review import ReviewAction, ReviewState, act, check_reviewer, narrow

__all__ = ["NOW", "REVIEW_ID", "FakeService", "synthetic_delivery", "valid_submit"]

NOW = "2026-01-05T09:30:00Z"
SHARED = ("risk", "subject.name")
REVIEW_ID = str(uuid.UUID(int=999, version=4))


def valid_submit(**overrides: Any) -> dict[str, Any]:
    """A request body the fake permits (synthetic data)."""
    body: dict[str, Any] = {
        "to": "assist",
        "isa": "SYN-ISA-1",
        "purpose": "marac",
        "type": "marac_referral",
        "payload": {
            "synthetic": True,
            "ref": "SYN-0001",
            "subject": {"name": "Alex Example", "postcode": "QX1 1AA"},
            "risk": "high",
        },
    }
    body.update(overrides)
    return body


def synthetic_delivery(cursor: int) -> InboxItem:
    return InboxItem(
        id=str(uuid.UUID(int=cursor, version=4)),
        cursor=cursor,
        from_="police",
        type="marac_referral",
        isa=IsaRef(id="SYN-ISA-1", version="1"),
        purpose="marac",
        lawful_basis={"police": {"regime": "dpa2018_part3"}},
        risk="high",
        handling=["must_not_inform:perpetrator"],
        received_at=NOW,
        payload={"synthetic": True, "ref": f"SYN-{cursor:04d}", "risk": "high"},
    )


class FakeService:
    """In-memory state; every method keeps the AgentService contract."""

    def __init__(self, deliveries: int = 0) -> None:
        self.store_down = False
        self.fail_closed = False
        self.bug = False
        self.outbox: dict[str, MessageStatusResponse] = {}
        self.submitted_by: list[str] = []
        self.previews = 0
        self.held: set[int] = set()
        self.inbox_items = {n: synthetic_delivery(n) for n in range(1, deliveries + 1)}
        self._idempotency: dict[str, tuple[SubmitRequest, SubmitResponse]] = {}
        self._ids = (str(uuid.UUID(int=n, version=4)) for n in itertools.count(1000))
        self.reviews_held = {REVIEW_ID: _held_review()}
        self.status_events: list[StatusEventView] = []
        self._event("review_pending", self.reviews_held[REVIEW_ID])

    # --- sending ---------------------------------------------------------------------------

    async def submit(self, caller: Caller, req: SubmitRequest) -> SubmitResponse:
        self._maybe_bug()
        if self.fail_closed:
            raise TrustUnavailable("the federation manifest has expired; sending is stopped")
        if req.idempotency_key is not None and req.idempotency_key in self._idempotency:
            return self._replay(req)
        shared, withheld, reasons = _evaluate(req)
        if reasons:
            raise Denied("the ISA does not permit this referral", reasons)
        if self.store_down:
            raise StoreUnavailable("the outbox could not be written")
        answer = SubmitResponse(
            id=next(self._ids), status="queued", shared_fields=shared, withheld_fields=withheld
        )
        self.outbox[answer.id] = _status(answer.id, req)
        self.submitted_by.append(caller.client)
        if req.idempotency_key is not None:
            self._idempotency[req.idempotency_key] = (req, answer)
        return answer

    def _replay(self, req: SubmitRequest) -> SubmitResponse:
        assert req.idempotency_key is not None
        first, answer = self._idempotency[req.idempotency_key]
        if first != req:
            raise IdempotencyConflict("this idempotency key was used with a different body")
        return answer

    async def preview(self, caller: Caller, req: SubmitRequest) -> PreviewResponse:
        self._maybe_bug()
        shared, withheld, reasons = _evaluate(req)
        self.previews += 1
        return PreviewResponse(
            decision="DENY" if reasons else "PERMIT",
            shared_fields=[] if reasons else shared,
            withheld_fields=withheld,
            reasons=reasons or ["permitted by SYN-ISA-1 flow marac"],
        )

    async def message(self, caller: Caller, id: str) -> MessageStatusResponse:
        self._maybe_bug()
        if id not in self.outbox:
            raise NotFound("no such message")
        return self.outbox[id]

    # --- reviews ---------------------------------------------------------------------------

    async def reviews(self, caller: Caller, after: int, limit: int) -> ReviewPage:
        self._maybe_bug()
        pending = [
            r for r in self.reviews_held.values() if r.status == "pending" and r.cursor > after
        ]
        items = sorted(pending, key=lambda r: r.cursor)[:limit]
        return ReviewPage(items=items, next_cursor=items[-1].cursor if items else after)

    async def review(self, caller: Caller, id: str) -> ReviewView:
        self._maybe_bug()
        if id not in self.reviews_held:
            raise NotFound("no such review")
        return self.reviews_held[id]

    async def approve_review(self, caller: Caller, id: str, req: ApproveRequest) -> ReviewView:
        view = self._act(caller, id, ReviewAction.APPROVE)
        message_id = next(self._ids)
        return self._settle(view, "approved", "review_approved", message_id=message_id)

    async def narrow_review(self, caller: Caller, id: str, req: NarrowRequest) -> ReviewView:
        view = self._act(caller, id, ReviewAction.NARROW)
        keep = narrow(view.shared_fields, req.shared_fields)
        narrowed = view.model_copy(update={"shared_fields": list(keep), "narrowed": True})
        self.reviews_held[id] = narrowed
        self._event("review_narrowed", narrowed)
        return narrowed

    async def return_review(self, caller: Caller, id: str, req: ReturnRequest) -> ReviewView:
        view = self._act(caller, id, ReviewAction.RETURN)
        return self._settle(view, "returned", "review_returned", return_reason=req.reason)

    async def events(self, caller: Caller, after: int, limit: int) -> StatusEventPage:
        self._maybe_bug()
        items = [e for e in self.status_events if e.cursor > after][:limit]
        return StatusEventPage(items=items, next_cursor=items[-1].cursor if items else after)

    def _act(self, caller: Caller, id: str, action: ReviewAction) -> ReviewView:
        """As the service: 404, then the reviewer (403), then pending (409), then the
        person's justification (400; the API already demands it, ``always``)."""
        self._maybe_bug()
        view = self.reviews_held.get(id)
        if view is None:
            raise NotFound("no such review")
        actor = caller.actor
        person, role = (actor.id, actor.role) if actor.is_person else (None, None)
        check_reviewer(person, role, submitter=view.submitted_by, required=view.reviewer_role)
        act(ReviewState(view.status), action)
        require_accountable(actor, f"a review's {action.value}")
        return view

    def _settle(self, view: ReviewView, status: str, event: str, **changes: Any) -> ReviewView:
        settled = view.model_copy(update={"status": status, "decided_at": NOW, **changes})
        self.reviews_held[view.id] = settled
        self._event(event, settled)
        return settled

    def _event(self, event: str, view: ReviewView) -> None:
        self.status_events.append(
            StatusEventView.model_validate(
                {"cursor": len(self.status_events) + 1, "id": next(self._ids), "event": event,
                 "at": NOW, "client": "case-send", "message_id": view.message_id,
                 "review_id": view.id, "to": view.to, "isa": view.isa.id,
                 "purpose": view.purpose, "type": view.type, "reason": view.return_reason}
            )
        )  # fmt: skip

    # --- receiving -------------------------------------------------------------------------

    async def inbox(self, caller: Caller, after: int, limit: int) -> InboxPage:
        self._maybe_bug()
        items = [self.inbox_items[c] for c in sorted(self.inbox_items) if c > after][:limit]
        return InboxPage(items=items, next_cursor=items[-1].cursor if items else after)

    async def ack(self, caller: Caller, id: str) -> None:
        self._maybe_bug()
        for cursor, item in list(self.inbox_items.items()):
            if item.id == id:
                del self.inbox_items[cursor]
                return
        raise NotFound("no such delivery")

    async def erase(self, caller: Caller, id: str) -> None:
        self._maybe_bug()
        cursor = self._cursor_of(id)
        if cursor in self.held:
            raise LegalHold("the delivery is under legal hold")
        del self.inbox_items[cursor]

    async def legal_hold(self, caller: Caller, id: str, held: bool) -> None:
        self._maybe_bug()
        cursor = self._cursor_of(id)
        (self.held.add if held else self.held.discard)(cursor)

    async def case_event(
        self, caller: Caller, id: str, event: Literal["case_closed", "activity"]
    ) -> None:
        self._maybe_bug()
        self._cursor_of(id)

    def _cursor_of(self, id: str) -> int:
        for cursor, item in self.inbox_items.items():
            if item.id == id:
                return cursor
        raise NotFound("no such delivery")

    # --- the rest --------------------------------------------------------------------------

    async def isas(self, caller: Caller) -> list[IsaSummary]:
        self._maybe_bug()
        flow = IsaFlowSummary(
            from_="police", to="assist", purpose="marac", types=["marac_referral"]
        )
        return [
            IsaSummary(
                id="SYN-ISA-1",
                version="1",
                title="Synthetic MARAC sharing agreement",
                parties=["police", "assist"],
                active=True,
                valid_until="2027-01-01T00:00:00Z",
                summary="Police may share a subject's name and risk level with ASSIST for MARAC.",
                flows=[flow],
            )
        ]

    async def health(self) -> HealthResponse:
        self._maybe_bug()
        return HealthResponse(
            status="fail_closed" if self.fail_closed else "ok",
            manifest=ManifestHealth(
                valid=not self.fail_closed, serial=7, expires_at="2026-02-01T00:00:00Z"
            ),
            keys=KeyHealth(valid=True, detail="signing and encryption keys loaded"),
            broker=BrokerHealth(connected=True),
            outbox_depth=len(self.outbox),
            certificate=CertificateHealth(valid=True, detail="valid until 2027-01-01T00:00:00Z"),
        )

    async def metrics_text(self, caller: Caller) -> str:
        self._maybe_bug()
        return (
            "# HELP isa_outbox_depth Messages waiting to be sent.\n"
            "# TYPE isa_outbox_depth gauge\n"
            f"isa_outbox_depth {len(self.outbox)}\n"
        )

    async def liveness(self) -> LivenessResponse:
        self._maybe_bug()
        if self.store_down:
            raise StoreUnavailable("the store is closed")
        return LivenessResponse()

    async def readiness(self) -> ReadinessResponse:
        self._maybe_bug()
        trust = "fail_closed" if self.fail_closed else "valid"
        return judge_readiness(ReadinessFacts(trust, not self.store_down, True, True))

    def _maybe_bug(self) -> None:
        if self.bug:
            raise RuntimeError("synthetic bug holding SYN-SECRET-VALUE")


def _held_review() -> ReviewView:
    return ReviewView.model_validate(
        {"id": REVIEW_ID, "cursor": 1, "status": "pending", "overdue": False, "to": "assist",
         "isa": {"id": "SYN-ISA-1", "version": "1"}, "purpose": "marac", "type": "marac_referral",
         "risk": "medium", "submitted_by": "SYN-worker-1", "reviewer_role": "marac_reviewer",
         "held_at": NOW, "due_at": "2026-01-07T09:30:00Z", "expires_at": "2026-01-19T09:30:00Z",
         "escalated_at": None, "shared_fields": list(SHARED), "withheld_fields": [],
         "narrowed": False, "reasons": ["At medium risk a person must review this."],
         "decided_at": None, "decided_by": None, "return_reason": None, "message_id": None}
    )  # fmt: skip


def _evaluate(req: SubmitRequest) -> tuple[list[str], list[WithheldField], list[str]]:
    _check_payload(req)
    if (req.isa, req.to, req.type, req.purpose) != (
        "SYN-ISA-1",
        "assist",
        "marac_referral",
        "marac",
    ):
        return [], [], [f"no flow in an active ISA allows {req.type} to {req.to} for {req.purpose}"]
    paths = sorted(_leaf_paths(req.payload))
    shared = [p for p in paths if p in SHARED]
    withheld = [
        WithheldField(path=p, reason="not allowed by SYN-ISA-1") for p in paths if p not in SHARED
    ]
    return shared, withheld, []


def _check_payload(req: SubmitRequest) -> None:
    if req.type != "marac_referral":
        parse_payload(req.type, req.payload)  # the real types: PayloadInvalid, as the agent does
        return
    errors: dict[str, str] = {}
    subject = req.payload.get("subject")
    if not isinstance(subject, dict) or not isinstance(subject.get("name"), str):
        errors["subject.name"] = "required: a string"
    if req.payload.get("risk") not in ("standard", "medium", "high"):
        errors["risk"] = "must be standard, medium or high"
    if errors:
        raise PayloadInvalid("the payload does not match marac_referral", errors)


def _leaf_paths(obj: dict[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in obj.items():
        path = f"{prefix}{key}"
        paths += _leaf_paths(value, path + ".") if isinstance(value, dict) else [path]
    return paths


def _status(id: str, req: SubmitRequest) -> MessageStatusResponse:
    return MessageStatusResponse(
        id=id,
        status="queued",
        to=req.to,
        type=req.type,
        isa=req.isa,
        purpose=req.purpose,
        created_at=NOW,
        history=[HistoryEntry(at=NOW, status="queued", detail="accepted into the outbox")],
        receipt=None,
    )
