"""The agent's behaviour behind the local API (implements ``agent.api_models.AgentService``).

Rules:
1. ``submit`` answers 202 only after the sealed envelope is committed to the outbox; the relay
   (``agent.relay``) publishes it later. Nothing is sent for DENY or REVIEW: a REVIEW decision
   is held, unsent, in the review queue (rule 9).
2. ``preview`` runs the same decision and stores nothing.
3. Responses carry field paths and reasons, never payload values (except the inbox, which hands
   verified payloads to the agency's own case system).
4. Once the outbox commit returned, the answer is 202: the message will be sent. A failure to
   write its audit entries after that (disk full) is logged, never reported as a 503, because
   the case system would then submit it again and the recipient would get it twice
   (``agent.audit.record_after_commit``). A refusal, or an inbox page, that cannot be audited
   fails with 503 instead: nothing is disclosed unlogged (``agent.audit`` rule 3).
5. A repeated idempotent call does not multiply the audit log: the first acknowledgement of a
   delivery gets an ``ack`` entry and repeats are counted (``isa_agent_repeated_acks_total`` and
   one ``repeat`` entry per window, :mod:`agent.audit.repeats`); so are submits repeating an
   idempotency key. Reading the same unacknowledged delivery again is a disclosure, so the
   first read per client in each window gets a ``deliver`` entry and the rest are counted.
6. Its dependencies are explicit and frozen (the store protocol, the audit sink and its repeat
   counter, trust, the keyring holder, the signing key, the publisher, the clock, metrics and
   the settings values it uses); ``agent.runtime`` wires them, tests pass fakes. Nothing here
   reassigns a field of anything shared. The ISAs are trust's in force at the moment of each
   call (``agent.trust`` rule 8): a new version applies from the next call, no restart.
7. A submit the ISA permits is then checked against the federation's trust, in this order,
   before anything is sealed or stored: a valid manifest (``TrustUnavailable``), our own
   certificate, the recipient's current key, the recipient's certificate
   (``federation.sending`` rules 1-3). Each failure is its own 503 problem type
   (``trust-unavailable``, ``sender-certificate-expired``, ``recipient-key-unavailable``,
   ``recipient-certificate-expired``), never a 403: ``Denied`` is raised only for what the ISA
   decided (no agreement in force, DENY, REVIEW). Each refusal is counted
   (``isa_agent_send_refused_total{cause}``) and audited as a ``submit`` entry whose outcome is
   the cause, once per client, cause and recipient per repeat window (rule 5); the rest are
   counted into the window's ``repeat`` entry. All but ``sender-certificate-expired`` carry
   ``Retry-After`` = the manifest poll interval: a newer manifest can cure them. Our own expired
   certificate needs the agency's renewal, so retrying in a loop does not help.
9. A REVIEW decision answers 202 ``review_pending`` once the referral is durably held for review
   (``federation.review``): the submitter must be named (``X-Actor-Id``, else 422
   ``actor-required``, nothing held). A reviewer (``agent.actor``: the ISA's role, not the
   submitter, a justification) approves, narrows or returns it. Checks run in this order: the
   review exists (404), the person may review it (403), it is pending (409), then for an
   approval the ISA decides again NOW and the trust checks of rule 7 run as for a submit; a
   fresh DENY is 403 ``denied`` and a trust failure its 503, and either way the review STAYS
   PENDING (a reviewer may try again once the cause is cured, or return it; it escalates when
   overdue and expires unsent after ``review_hold_hours``). An approval then seals and queues
   the message exactly as a submit does, in the commit that settles the review. Every act is
   audited with the person (``agent.reviews`` rule 2); refusals too, once per window (rule 5).
8. ``health`` and ``readiness`` judge the same facts: no valid manifest or our certificate not
   valid is ``fail_closed`` / ``not_ready`` (nothing can be sent); recipients that cannot be
   sent to now (rules 2-3, per recipient of our ISA flows) are listed and make the agent
   ``degraded``: it still sends to the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.actor import Actor
from agent.api_models import (
    ApproveRequest,
    BrokerHealth,
    CertificateHealth,
    HealthResponse,
    HistoryEntry,
    InboxItem,
    InboxPage,
    IsaFlowSummary,
    IsaSummary,
    KeyHealth,
    LivenessResponse,
    ManifestHealth,
    MessageStatusResponse,
    NarrowRequest,
    PreviewResponse,
    ReadinessResponse,
    ReceiptView,
    ReturnRequest,
    ReviewPage,
    ReviewView,
    StatusEventPage,
    SubmitRequest,
    SubmitResponse,
    UnreachableRecipient,
    WithheldField,
)
from agent.audit import AuditEvent, AuditSink, Flow, RepeatAudit, message_event, record_after_commit
from agent.clock import Clock
from agent.errors import (
    ActorRequired,
    Denied,
    PayloadTooLarge,
    RecipientCertificateExpired,
    RecipientKeyUnavailable,
    SenderCertificateExpired,
    SendRefused,
    StoreUnavailable,
    TrustUnavailable,
)
from agent.keyrotation import KeyringHolder
from agent.metrics import Metrics
from agent.probes import ReadinessFacts, judge_readiness
from agent.publisher import Publisher
from agent.reviews import event_page, review_event, review_view, shared_now, submit_answer
from agent.store import PayloadPurged, ReviewRecord, Store
from agent.trust import Trust, sendable_manifest
from federation.canonical import canonical_json, format_time
from federation.envelope import Sealed, WireVersion, seal_envelope
from federation.isa import Decision, Isa, explain
from federation.keys import SigningKey
from federation.manifest import Manifest
from federation.pipeline import Prepared, prepare, prepare_approved
from federation.referrals import parse_payload
from federation.review import (
    ReviewAction,
    ReviewRefused,
    ReviewSettled,
    act,
    check_reviewer,
    due_at,
    narrow,
    wire_required,
)
from federation.sending import SendBlock, SendCause, recipient_block, send_block, sender_block

__all__ = ["Service"]

log = logging.getLogger(__name__)


def _withheld(decision: Decision) -> list[WithheldField]:
    return [WithheldField(path=w.path, reason=w.reason) for w in decision.withheld_fields]


def _flow(decision: Decision, req: SubmitRequest, lawful_basis: Mapping[str, Any]) -> Flow:
    return Flow(
        isa_id=decision.isa_id,
        isa_version=decision.isa_version,
        purpose=req.purpose,
        message_type=req.type,
        risk=decision.risk_level,
        lawful_basis=lawful_basis,
    )


def _decision_event(
    client: str, decision: Decision, req: SubmitRequest, message_id: str | None
) -> AuditEvent:
    return message_event(
        "decision",
        client,
        message_id,
        req.to,
        _flow(decision, req, decision.lawful_basis),
        outcome=decision.outcome,
        fields_shared=decision.shared_fields,
        fields_withheld=tuple((w.path, w.reason_code) for w in decision.withheld_fields),
        subject_source=req.payload,
    )


_REFUSALS: dict[SendCause, type[SendRefused]] = {
    "sender_certificate_expired": SenderCertificateExpired,
    "recipient_key_unavailable": RecipientKeyUnavailable,
    "recipient_certificate_expired": RecipientCertificateExpired,
}


def _in_force(manifest: Manifest, isa: Isa, now: datetime) -> bool:
    entry = manifest.isa_in_force(isa.id, now)
    return entry is not None and entry.sha256 == isa.sha256 and entry.active_at(now)


def _unreachable(agency: str, block: SendBlock) -> UnreachableRecipient:
    cause = block.cause
    assert cause != "sender_certificate_expired"  # recipient_block never says so
    return UnreachableRecipient(agency=agency, cause=cause, detail=block.detail)


def _certificate_problem(health: HealthResponse | None) -> str | None:
    """Why our certificate stops sending, for readiness; None when it does not (or when the
    manifest is missing or expired, which readiness already names as ``manifest``)."""
    if health is None or health.certificate.valid or not health.manifest.valid:
        return None
    return health.certificate.detail


def _body(req: SubmitRequest) -> bytes:
    return canonical_json(req.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"}))


def _body_sha256(req: SubmitRequest) -> str:
    return hashlib.sha256(_body(req)).hexdigest()


def _held_review(
    review_id: str, client: str, actor: Actor, req: SubmitRequest, decision: Decision, isa: Isa,
    now: datetime, hold: timedelta,
) -> ReviewRecord:  # fmt: skip
    """Rule 9: the review a REVIEW decision holds; the ISA's rule names its role and limit."""
    flow = next(f for f in isa.doc.flows if f.id == decision.flow_id)
    rule = flow.review_rule(decision.risk_level)
    return ReviewRecord(
        id=review_id, client=client, submitter=actor.id, role=rule.role, recipient=req.to,
        isa_id=isa.id, isa_version=isa.version, purpose=req.purpose, message_type=req.type,
        risk=decision.risk_level, shared_fields=decision.shared_fields,
        withheld_fields=tuple((w.path, w.reason) for w in decision.withheld_fields),
        reasons=decision.reasons, held_at=now, due_at=due_at(now, rule), expires_at=now + hold,
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """``AgentService`` over its dependencies (rule 6)."""

    agency: str
    store: Store
    audit: AuditSink
    repeats: RepeatAudit
    trust: Trust
    keys: KeyringHolder
    signing_key: SigningKey
    publisher: Publisher
    clock: Clock
    metrics: Metrics
    #: wakes the outbox relay once a message is committed to the outbox
    wake_relay: Callable[[], None]
    ttl: timedelta
    send_version: WireVersion
    max_ciphertext: int
    #: seconds a case system should wait before retrying a refusal a new manifest can cure
    retry_after: int = 60
    #: how long a referral stays held for review before it expires unsent (rule 9)
    review_hold: timedelta = timedelta(days=14)

    def _isa(self, isa_id: str, now: datetime) -> Isa:
        isa = self.trust.isas(now).get(isa_id)
        if isa is None:
            raise Denied(f"no ISA {isa_id!r} is in force at this agency", [])
        return isa

    async def submit(
        self, client: str, req: SubmitRequest, actor: Actor | None = None
    ) -> SubmitResponse:
        now = self.clock()
        isa = self._isa(req.isa, now)
        prepared = prepare(
            isa, sender=self.agency, recipient=req.to, purpose=req.purpose,
            message_type=req.type, payload=req.payload, now=now, ttl=self.ttl,
        )  # fmt: skip
        decision = prepared.decision
        if prepared.spec is None:
            if decision.outcome == "REVIEW":
                return await self._hold(client, req, actor, decision, isa, now)  # rule 9
            await self.audit.record(_decision_event(client, decision, req, None), now)
            self.metrics.inc("isa_agent_denied_total")
            raise Denied(f"this referral is not permitted under {isa.id}", decision.reasons)
        manifest = await self._sendable(client, req, decision, isa, now)  # rule 7
        sealed = self._seal(prepared, req.to, manifest, now)
        result = await self.store.enqueue_outgoing(
            message_id=sealed.header.id, client=client, idempotency_key=req.idempotency_key,
            body_sha256=_body_sha256(req) if req.idempotency_key is not None else "",
            recipient=req.to, header=sealed.header.to_json(), frame=sealed.frame, now=now,
            expires_at=prepared.spec.expires_at,
        )  # fmt: skip
        records = None
        if result.created:
            # the submit entry inherits the decision's subject keys (agent.audit.log rule 3)
            flow = _flow(decision, req, prepared.spec.lawful_basis)
            submitted = message_event("submit", client, result.id, req.to, flow, outcome="queued")
            decided = _decision_event(client, decision, req, result.id)
            records = record_after_commit(  # rule 4; queued now, in this order
                self.audit, now, decided, submitted, log=log, done="queued"
            )
        self.wake_relay()  # no need to wait for the audit commit: the relay's own "send"
        if records is not None:  # entry can only queue after these
            await records
        self.metrics.inc("isa_agent_submitted_total", int(result.created))
        if not result.created:  # the same idempotency key again (rule 5)
            repeat = message_event("submit", client, result.id, req.to, outcome="idempotent_repeat")
            await self.repeats.count(("submit", client, result.id), repeat, now)
        return SubmitResponse(
            id=result.id,
            status=result.status.value,
            shared_fields=list(decision.shared_fields),
            withheld_fields=_withheld(decision),
        )

    def _seal(self, prepared: Prepared, to: str, manifest: Manifest, now: datetime) -> Sealed:
        """Seal a permitted (or approved) referral for ``to``'s current key."""
        key = manifest.current_encryption_key(to, now)
        if key is None:  # pragma: no cover - _sendable checked it (federation.sending rule 2)
            raise RecipientKeyUnavailable(f"{to} has no current encryption key")
        assert prepared.spec is not None  # the caller sends only what was prepared to send
        sealed = seal_envelope(
            prepared.payload, prepared.spec, signing_key=self.signing_key,
            recipient_public=key.public_bytes(), now=now, version=self.send_version,
        )  # fmt: skip
        if sealed.ciphertext_length > self.max_ciphertext:
            raise PayloadTooLarge("the sealed referral is over [limits] max_ciphertext_bytes")
        return sealed

    async def _hold(
        self, client: str, req: SubmitRequest, actor: Actor | None, decision: Decision,
        isa: Isa, now: datetime,
    ) -> SubmitResponse:  # fmt: skip
        """Rule 9: hold a REVIEW decision for review, unsent; 202 ``review_pending``."""
        if actor is None:
            await self.audit.record(_decision_event(client, decision, req, None), now)
            raise ActorRequired(
                "this referral needs review by a second person, so the person submitting it "
                "must be named (X-Actor-Id); nothing was held or sent"
            )
        review = _held_review(str(uuid.uuid4()), client, actor, req, decision, isa, now,
                              self.review_hold)  # fmt: skip
        keyed = req.idempotency_key is not None
        held = await self.store.hold_for_review(
            review, idempotency_key=req.idempotency_key, request=_body(req),
            body_sha256=_body_sha256(req) if keyed else "",
        )  # fmt: skip
        review = held.review
        if not held.created:  # the same idempotency key again (rule 5)
            repeat = message_event("submit", client, review.id, req.to, outcome="idempotent_repeat")
            await self.repeats.count(("submit", client, review.id), repeat, now)
            return await self._submit_answer(review)
        self.metrics.inc("isa_agent_reviews_held_total")
        flow = _flow(decision, req, decision.lawful_basis)
        why = f"; justification: {actor.justification}" if actor.justification else ""
        detail = f"held for review by role {review.role} until {format_time(review.due_at)}{why}"
        submitted = message_event("submit", actor.label(client), review.id, req.to, flow,
                                  outcome="review_pending", detail=detail)  # fmt: skip
        decided = _decision_event(client, decision, req, review.id)
        await record_after_commit(self.audit, now, decided, submitted, log=log, done="held")
        return submit_answer(review)

    async def _submit_answer(self, review: ReviewRecord) -> SubmitResponse:
        """A repeat's answer: where the review stands (once approved, its message's status)."""
        if review.message_id is None:
            return submit_answer(review)
        status = await self.store.message_status(review.message_id)
        return submit_answer(review, status.status.value)

    async def _sendable(
        self, client: str, req: SubmitRequest, decision: Decision, isa: Isa, now: datetime
    ) -> Manifest:
        """Rule 7: the manifest to seal under, or the named 503, audited and counted."""
        try:
            manifest = sendable_manifest(self.trust, now, isa)
        except TrustUnavailable as exc:
            await self._refused(client, req, decision, "trust_unavailable", exc.message, now)
            raise TrustUnavailable(exc.message, retry_after=self.retry_after) from None
        block = send_block(manifest, sender_key=self.signing_key.key_id, recipient=req.to, now=now)
        if block is not None:
            await self._refused(client, req, decision, block.cause, block.detail, now)
            retry = None if block.cause == "sender_certificate_expired" else self.retry_after
            raise _REFUSALS[block.cause](block.detail, retry_after=retry)
        return manifest

    async def _refused(
        self, client: str, req: SubmitRequest, decision: Decision, cause: str, detail: str,
        now: datetime,
    ) -> None:  # fmt: skip
        """Count a refusal and audit the first of its window (rules 5 and 7)."""
        self.metrics.refuse(cause)
        flow = _flow(decision, req, decision.lawful_basis)
        event = message_event("submit", client, None, req.to, flow, outcome=cause, detail=detail)
        if await self.repeats.admit(("send_refused", client, cause, req.to), event, now):
            await self.audit.record(event, now)

    def _record_all(
        self, at: datetime, events: Sequence[AuditEvent]
    ) -> Awaitable[list[BaseException | None]]:
        """Record ``events`` in this order, in one group commit (one fsync, not one each).
        ``AuditLog.record`` queues each entry when called, so they are queued on return, in
        order; await the result for each one's outcome: None, or the exception it raised."""
        records = [self.audit.record(event, at) for event in events]
        return asyncio.gather(*records, return_exceptions=True)

    # -- reviews (rule 9) ---------------------------------------------------------------------

    async def reviews(self, after: int, limit: int) -> ReviewPage:
        now = self.clock()
        items = [review_view(r, now) for r in await self.store.reviews_page(after, limit)]
        return ReviewPage(items=items, next_cursor=items[-1].cursor if items else after)

    async def review(self, id: str) -> ReviewView:
        return review_view(await self.store.review(id), self.clock())

    async def _reviewable(
        self, client: str, id: str, actor: Actor | None, action: ReviewAction, now: datetime
    ) -> tuple[ReviewRecord, Actor]:
        """Rule 9's first checks: 404, then 403 (the person), then 409 (pending), then the
        justification (422); a refused person or state is audited (once per window) first."""
        review = await self.store.review(id)
        person, role = (actor.id, actor.role) if actor is not None else (None, None)
        try:
            check_reviewer(person, role, submitter=review.submitter, required=review.role)
            act(review.state, action)
        except ReviewRefused as exc:
            who = actor.label(client) if actor is not None else client
            outcome = f"{action.value}_refused"
            event = review_event(review, who, outcome, person=actor, detail=exc.message)
            if await self.repeats.admit(("review", who, id, outcome), event, now):
                await self.audit.record(event, now)
            raise
        assert actor is not None  # check_reviewer refuses nobody
        if not actor.justification and action is not ReviewAction.RETURN:
            raise ActorRequired(
                "a reviewer must give a justification (the body's justification or the "
                "X-Actor-Justification header); nothing was changed"
            )
        return review, actor

    async def narrow_review(
        self, client: str, id: str, actor: Actor | None, req: NarrowRequest
    ) -> ReviewView:
        now = self.clock()
        actor = actor.because(req.justification) if actor is not None else None
        review, person = await self._reviewable(client, id, actor, ReviewAction.NARROW, now)
        keep = narrow(
            shared_now(review), req.shared_fields, required=wire_required(review.message_type)
        )
        narrowed = await self.store.narrow_review(id, keep, by=person.label(client), at=now)
        event = review_event(narrowed, person.label(client), "narrowed", person=person,
                             fields=keep)  # fmt: skip
        await record_after_commit(self.audit, now, event, log=log, done="narrowed")
        return review_view(narrowed, now)

    async def return_review(
        self, client: str, id: str, actor: Actor | None, req: ReturnRequest
    ) -> ReviewView:
        now = self.clock()
        _review, person = await self._reviewable(client, id, actor, ReviewAction.RETURN, now)
        by = person.label(client)
        returned = await self.store.return_review(id, req.reason, by=by, at=now)
        event = review_event(returned, by, "returned", person=person,
                             detail=f"reason: {req.reason}")  # fmt: skip
        self.metrics.inc("isa_agent_reviews_returned_total")
        await record_after_commit(self.audit, now, event, log=log, done="returned")
        return review_view(returned, now)

    async def approve_review(
        self, client: str, id: str, actor: Actor | None, req: ApproveRequest
    ) -> ReviewView:
        now = self.clock()
        actor = actor.because(req.justification) if actor is not None else None
        review, person = await self._reviewable(client, id, actor, ReviewAction.APPROVE, now)
        held = await self._held_request(id)
        isa = self._isa(held.isa, now)
        prepared = prepare_approved(
            isa, sender=self.agency, recipient=held.to, purpose=held.purpose,
            message_type=held.type, payload=held.payload, keep=review.narrowed, now=now,
            ttl=self.ttl,
        )  # fmt: skip
        if prepared.spec is None:  # decided again: no longer allowed; it stays pending
            await self._approval_refused(client, review, person, prepared.decision, now)
        manifest = await self._sendable(person.label(client), held, prepared.decision, isa, now)
        sealed = self._seal(prepared, held.to, manifest, now)
        assert prepared.spec is not None
        approved = await self.store.approve_review(
            id, by=person.label(client), at=now, message_id=sealed.header.id,
            header=sealed.header.to_json(), frame=sealed.frame,
            expires_at=prepared.spec.expires_at,
        )  # fmt: skip
        await self._audit_approval(client, person, approved, held, prepared, now)
        self.wake_relay()
        return review_view(approved, now)

    async def _held_request(self, id: str) -> SubmitRequest:
        """The request held for review ``id``; settled meanwhile (shredded) is ReviewSettled."""
        try:
            return SubmitRequest.model_validate_json(await self.store.review_request(id))
        except PayloadPurged:
            settled = await self.store.review(id)
            raise ReviewSettled(settled.state, ReviewAction.APPROVE) from None

    async def _approval_refused(
        self, client: str, review: ReviewRecord, person: Actor, decision: Decision,
        now: datetime,
    ) -> None:  # fmt: skip
        """Rule 9: the fresh decision no longer lets it leave: audited, 403, still pending."""
        event = review_event(review, person.label(client), "approve_refused", person=person,
                             detail=f"decided again: {decision.outcome}")  # fmt: skip
        await self.audit.record(event, now)
        raise Denied(
            f"decided again now, the ISA no longer lets this referral leave ({decision.outcome});"
            " it stays pending: return it, or approve it once the cause is cured",
            decision.reasons,
        )

    async def _audit_approval(
        self, client: str, person: Actor, review: ReviewRecord, held: SubmitRequest,
        prepared: Prepared, now: datetime,
    ) -> None:  # fmt: skip
        """The review's approval, then the message's decision and submit, as a submit's."""
        by, decision = person.label(client), prepared.decision
        assert prepared.spec is not None
        assert review.message_id is not None
        mid = review.message_id
        approved = review_event(review, by, "approved", person=person,
                                detail=f"sent as message {mid}",
                                fields=decision.shared_fields)  # fmt: skip
        flow = _flow(decision, held, prepared.spec.lawful_basis)
        decided = _decision_event(by, decision, held, mid)
        submitted = message_event("submit", by, mid, held.to, flow, outcome="queued",
                                  detail=f"approved from review {review.id}")  # fmt: skip
        self.metrics.inc("isa_agent_reviews_approved_total")
        self.metrics.inc("isa_agent_submitted_total")
        await record_after_commit(self.audit, now, approved, decided, submitted, log=log,
                                  done="approved")  # fmt: skip

    async def events(self, after: int, limit: int) -> StatusEventPage:
        return event_page(await self.store.events_page(after, limit), after)

    async def preview(self, client: str, req: SubmitRequest) -> PreviewResponse:
        now = self.clock()
        isa = self.trust.isas(now).get(req.isa)
        if isa is None:
            parse_payload(req.type, req.payload)  # a broken payload is 422 whatever the ISA
            reason = f"No agreement {req.isa!r} is in force at this agency, so nothing is shared."
            return PreviewResponse(decision="DENY", shared_fields=[], withheld_fields=[],
                                   reasons=[reason])  # fmt: skip
        decision = prepare(
            isa, sender=self.agency, recipient=req.to, purpose=req.purpose,
            message_type=req.type, payload=req.payload, now=now, ttl=self.ttl,
        ).decision  # fmt: skip
        return PreviewResponse(
            decision=decision.outcome,
            shared_fields=list(decision.shared_fields),
            withheld_fields=_withheld(decision),
            reasons=list(decision.reasons),
        )

    async def message(self, id: str) -> MessageStatusResponse:
        status = await self.store.message_status(id)
        header: dict[str, Any] = status.header
        receipt = None
        if status.receipt is not None:
            r = status.receipt
            receipt = ReceiptView(status=r.status, reason=r.reason or None,
                                  at=format_time(r.at), verified=True)  # fmt: skip
        return MessageStatusResponse(
            id=status.id,
            status=status.status.value,
            to=status.recipient,
            type=str(header.get("type", "")),
            isa=str(header.get("isa", {}).get("id", "")),
            purpose=str(header.get("purpose", "")),
            created_at=format_time(status.created_at),
            history=[
                HistoryEntry(at=format_time(h.at), status=h.status, detail=h.detail)
                for h in status.history
            ],
            receipt=receipt,
        )

    async def inbox(self, client: str, after: int, limit: int) -> InboxPage:
        store = self.store
        items, delivered = [], []
        for item in await store.inbox_page(after, limit, unacked_only=True):
            try:
                payload = json.loads(await store.read_inbox_payload(item.id))
            except PayloadPurged:
                continue
            h = item.header
            flow = Flow.of_header(h)
            delivered.append(
                message_event("deliver", client, item.id, item.sender, flow, outcome="read")
            )
            items.append(
                InboxItem.model_validate(
                    {
                        "id": item.id, "cursor": item.cursor, "from": item.sender,
                        "type": h["type"], "isa": {"id": h["isa"]["id"],
                                                    "version": h["isa"]["version"]},
                        "purpose": h["purpose"], "lawful_basis": h["lawful_basis"],
                        "risk": h["risk"], "handling": h["handling"],
                        "received_at": format_time(item.received_at), "payload": payload,
                    }
                )
            )  # fmt: skip
        now = self.clock()
        delivered = [e for e in delivered if await self._first_read(e, now)]
        for outcome in await self._record_all(now, delivered):
            if isinstance(outcome, BaseException):
                raise outcome  # as before: no page is handed over unaudited
        next_cursor = items[-1].cursor if items else after
        return InboxPage(items=items, next_cursor=next_cursor)

    async def _first_read(self, event: AuditEvent, now: datetime) -> bool:
        """Rule 5: True if this read of a delivery by this client is the first in its window."""
        key = ("deliver", event.actor, event.message_id or "")
        return await self.repeats.admit(key, event, now)

    async def ack(self, client: str, id: str) -> None:
        """Rule 5: the first acknowledgement gets an entry; repeats are counted."""
        now = self.clock()
        event = message_event("ack", client, id)
        if await self.store.ack(id, now):
            await self.audit.record(event, now)
            return
        self.metrics.inc("isa_agent_repeated_acks_total")
        await self.repeats.count(("ack", client, id), event, now)

    async def isas(self) -> list[IsaSummary]:
        """The ISAs this agency is a party to, each in the version in force (the others are
        none of its business)."""
        now = self.clock()
        mine = self.trust.isas(now).in_force()
        return [self._summary(isa, now) for isa in mine if isa.party(self.agency) is not None]

    def _summary(self, isa: Isa, now: datetime) -> IsaSummary:
        manifest = self.trust.manifest
        active = manifest is not None and _in_force(manifest, isa, now)
        to = isa.doc.isa.effective_to
        return IsaSummary(
            id=isa.id,
            version=isa.version,
            title=isa.doc.isa.title,
            parties=[p.id for p in isa.doc.parties],
            active=active,
            valid_until=None if to is None else to.isoformat() + "T00:00:00Z",
            summary=explain(isa),
            flows=[
                IsaFlowSummary.model_validate(
                    {"from": sender, "to": to_, "purpose": f.purpose, "types": f.message_types}
                )
                for f in isa.doc.flows
                for sender in f.sender
                for to_ in f.to
            ],
        )

    async def health(self) -> HealthResponse:
        now = self.clock()
        manifest, trust_status = self.trust.manifest, self.trust.state.status(now)
        current = self.keys.current.current(now)
        mine = manifest.agency(self.agency) if manifest is not None else None
        announced = bool(current and mine and any(a.kid == current.kid for a in mine.announcements))
        connected = self.publisher.connected
        warning = self.trust.manifest_alert(now)
        certificate, unreachable = self._sending_health(manifest, now)  # rule 8
        status: Literal["ok", "degraded", "fail_closed"]
        if trust_status != "valid" or not certificate.valid:
            status = "fail_closed"
        elif not (connected and current and announced) or warning or unreachable:
            status = "degraded"
        else:
            status = "ok"
        key_detail = "current key announced" if announced else "no current announced key"
        return HealthResponse(
            status=status,
            manifest=ManifestHealth(
                valid=trust_status == "valid",
                serial=manifest.serial if manifest else None,
                expires_at=manifest.document.expires_at if manifest else None,
                error=self.trust.last_error,
                warning=warning,
            ),
            keys=KeyHealth(valid=bool(current and announced), detail=key_detail),
            broker=BrokerHealth(connected=connected),
            outbox_depth=await self.store.outbox_depth(),
            certificate=certificate,
            unreachable_recipients=unreachable,
        )

    def _sending_health(
        self, manifest: Manifest | None, now: datetime
    ) -> tuple[CertificateHealth, list[UnreachableRecipient]]:
        """Rule 8: our certificate, and the recipients of our flows nothing can be sent to."""
        if manifest is None:
            return CertificateHealth(valid=False, detail="no verified manifest is held"), []
        block = sender_block(manifest, self.signing_key.key_id, now)
        if block is None:
            identity = manifest.signing_key_for(self.signing_key.key_id)
            until = "" if identity is None else f" until {format_time(identity.not_after)}"
            certificate = CertificateHealth(valid=True, detail=f"valid{until}")
        else:
            certificate = CertificateHealth(valid=False, detail=block.detail)
        recipients = self._recipients(manifest, now)
        blocks = ((to, recipient_block(manifest, to, now)) for to in recipients)
        unreachable = [_unreachable(to, b) for to, b in blocks if b is not None]
        return certificate, unreachable

    def _recipients(self, manifest: Manifest, now: datetime) -> list[str]:
        """Every agency a flow of ours lets us send to, under an ISA the manifest has in force."""
        isas = self.trust.isas(now).in_force()
        flows = (f for isa in isas if _in_force(manifest, isa, now) for f in isa.doc.flows)
        return sorted({to for f in flows if self.agency in f.sender for to in f.to})

    async def metrics_text(self) -> str:
        now = self.clock()
        manifest = self.trust.manifest
        gauges = {
            "isa_agent_outbox_depth": float(await self.store.outbox_depth()),
            "isa_agent_broker_connected": float(self.publisher.connected),
            "isa_agent_manifest_serial": float(manifest.serial if manifest else 0),
            "isa_agent_manifest_seconds_to_expiry": (
                (manifest.expires_at - now).total_seconds() if manifest else 0.0
            ),
        }
        gauges |= self.trust.expiry_gauges(self.agency, self.trust.isas(now), now)
        return self.metrics.render(gauges)

    async def liveness(self) -> LivenessResponse:
        await self.store.outbox_depth()  # the store answers a read, or StoreUnavailable
        return LivenessResponse()

    async def readiness(self) -> ReadinessResponse:
        health: HealthResponse | None
        try:
            health = await self.health()
        except StoreUnavailable:
            health = None
        facts = ReadinessFacts(
            trust=self.trust.state.status(self.clock()),
            store_ok=health is not None,
            broker_connected=self.publisher.connected,
            key_announced=health is None or health.keys.valid,
            certificate_problem=_certificate_problem(health),
            unreachable=tuple(r.agency for r in health.unreachable_recipients) if health else (),
        )
        return judge_readiness(facts)
