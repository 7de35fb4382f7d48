"""The agent's behaviour behind the local API (implements ``agent.api_models.AgentService``).

Rules:
1. ``submit`` answers 202 only after the sealed envelope is committed to the outbox; the relay
   (``agent.relay``) publishes it later. Nothing is sent for DENY or REVIEW: a REVIEW decision
   is held, unsent, in the review queue (rule 12).
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
8. ``health`` and ``readiness`` judge the same facts: no valid manifest or our certificate not
   valid is ``fail_closed`` / ``not_ready`` (nothing can be sent); recipients that cannot be
   sent to now (rules 2-3, per recipient of our ISA flows) are listed and make the agent
   ``degraded``: it still sends to the others.
9. Every call names its caller (:class:`agent.actor.Caller`: the API client and the person it acts
   for, or the client itself as the system) and every entry it causes carries that person (DPA 2018
   s62). A consultation that leaves no other entry is recorded as a ``consult`` entry BEFORE the
   answer goes out (a preview, a status read, an empty inbox page, the review queue, a review, the
   event feed, the ISA list, the metrics), the first per client, person and subject of the call in
   each repeat window; the rest are counted (rule 5). A submit that generalises fields also records
   an ``alter`` entry naming their paths and how (never the values).
10. A flow whose ISA obligations say ``log: dpa2018_s62`` needs a named person and a
    justification for its disclosures even where the API lets a call name nobody
    (``[api] require_actor = false``): a submit under it, and an inbox page holding a delivery
    that arrived under it, are refused (400 ``actor-required`` / ``justification-required``)
    before anything is sealed, stored, audited or handed over. A submit the ISA holds for
    review discloses nothing until approved (rule 12 names its submitter; the approval always
    names the reviewer and their reason), so the rule applies to its approval, not its hold.
11. Erasure on request and a legal hold always need a named person and a justification,
    whatever ``[api] require_actor`` says: they are the agency's legal acts on the data. An
    erasure shreds the payload now (the store refuses one under legal hold: 409 ``legal-hold``,
    nothing changed) and is a ``purge`` entry naming them; erasing again is counted (rule 5).
    Placing or releasing a hold is a ``hold`` entry; a case closure or activity the case
    system reports is a ``case_event`` entry (repeats counted), and retention counts from it
    where the ISA says so (``agent.retention`` rule 2).
12. A REVIEW decision answers 202 ``review_pending`` once the referral is durably held for review
    (``federation.review``): the submitter must be named (``X-Actor-Id`` and ``X-Actor-Role``, else
    400 ``actor-required`` whatever ``[api] require_actor`` says, nothing held). A reviewer (the
    caller's person: the ISA's role, not the submitter, a justification, which a body's
    ``justification`` replaces) approves, narrows or returns it. Checks run in this order: the
    review exists (404), the person may review it (403), it is pending (409), the justification
    (400; the API asks for it first), then for an approval the ISA decides again NOW and the trust
    checks of rule 7 run as for a submit; a fresh DENY is 403 ``denied`` and a trust failure its
    503, and either way the review STAYS PENDING (a reviewer may try again once the cause is cured,
    or return it; it escalates when overdue and expires unsent after ``review_hold_hours``). An
    approval then seals and queues the message exactly as a submit does, in the commit that settles
    the review. Every act is audited with the person in the entry's actor fields (``agent.reviews``
    rule 2); refusals too, once per window (rule 5). Reading the queue, a review or the event feed
    is a ``consult`` entry (rule 9).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.actor import Actor, Caller, require_accountable, require_person
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
from agent.store import InboxItem as StoredInboxItem
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
    caller: Caller, decision: Decision, req: SubmitRequest, message_id: str | None
) -> AuditEvent:
    return message_event(
        "decision",
        caller.client,
        message_id,
        req.to,
        _flow(decision, req, decision.lawful_basis),
        outcome=decision.outcome,
        fields_shared=decision.shared_fields,
        fields_withheld=tuple((w.path, w.reason_code) for w in decision.withheld_fields),
        subject_source=req.payload,
        person=caller.actor,
    )


def _alterations(
    caller: Caller, decision: Decision, message_id: str, flow: Flow
) -> list[AuditEvent]:
    """Rule 9: the ``alter`` entry for the fields minimisation generalised (none: no entry)."""
    if not decision.transforms:
        return []
    altered = tuple(sorted(decision.transforms.items()))
    detail = f"{len(altered)} field(s) generalised before sending"
    return [message_event("alter", caller.client, message_id, decision.recipient, flow,
                          outcome="generalised", detail=detail, fields_altered=altered,
                          person=caller.actor)]  # fmt: skip


def _s62_flows(isa: Isa, sender: str, recipient: str, purpose: str, message_type: str) -> bool:
    """Rule 10: whether a flow covering this exchange logs under DPA 2018 s62."""
    flows = isa.flows_for(sender, recipient, purpose, message_type)
    return any(f.obligations.log == "dpa2018_s62" for f in flows)


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


def _label(caller: Caller) -> str:
    """Who settled a review, as the review record keeps it: ``client/person``."""
    return f"{caller.client}/{caller.actor.id}"


def _because(caller: Caller, justification: str | None) -> Caller:
    """``caller`` with a body's ``justification`` in place of the header's (it takes
    precedence: it is the reviewer's reason for this act)."""
    if justification is None:
        return caller
    return Caller(caller.client, replace(caller.actor, justification=justification))


def _held_review(
    review_id: str, client: str, actor: Actor, req: SubmitRequest, decision: Decision, isa: Isa,
    now: datetime, hold: timedelta,
) -> ReviewRecord:  # fmt: skip
    """Rule 12: the review a REVIEW decision holds; the ISA's rule names its role and limit."""
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
    #: how long a referral stays held for review before it expires unsent (rule 12)
    review_hold: timedelta = timedelta(days=14)

    def _isa(self, isa_id: str, now: datetime) -> Isa:
        isa = self.trust.isas(now).get(isa_id)
        if isa is None:
            raise Denied(f"no ISA {isa_id!r} is in force at this agency", [])
        return isa

    async def submit(self, caller: Caller, req: SubmitRequest) -> SubmitResponse:
        now = self.clock()
        isa = self._isa(req.isa, now)
        prepared = prepare(
            isa, sender=self.agency, recipient=req.to, purpose=req.purpose,
            message_type=req.type, payload=req.payload, now=now, ttl=self.ttl,
        )  # fmt: skip
        decision = prepared.decision
        s62 = _s62_flows(isa, self.agency, req.to, req.purpose, req.type)
        if s62 and decision.outcome != "REVIEW":  # rule 10; a held one discloses nothing yet
            require_accountable(caller.actor, f"{isa.id} logs this flow under DPA 2018 s62")
        if prepared.spec is None:
            if decision.outcome == "REVIEW":
                return await self._hold(caller, req, decision, isa, now)  # rule 12
            await self.audit.record(_decision_event(caller, decision, req, None), now)
            self.metrics.inc("isa_agent_denied_total")
            raise Denied(f"this referral is not permitted under {isa.id}", decision.reasons)
        manifest = await self._sendable(caller, req, decision, isa, now)  # rule 7
        sealed = self._seal(prepared, req.to, manifest, now)
        result = await self.store.enqueue_outgoing(
            message_id=sealed.header.id, client=caller.client,
            idempotency_key=req.idempotency_key,
            body_sha256=_body_sha256(req) if req.idempotency_key is not None else "",
            recipient=req.to, header=sealed.header.to_json(), frame=sealed.frame, now=now,
            expires_at=prepared.spec.expires_at,
        )  # fmt: skip
        records = None
        if result.created:
            # the submit entry inherits the decision's subject keys (agent.audit.log rule 3)
            flow = _flow(decision, req, prepared.spec.lawful_basis)
            submitted = message_event("submit", caller.client, result.id, req.to, flow,
                                      outcome="queued", person=caller.actor)  # fmt: skip
            decided = _decision_event(caller, decision, req, result.id)
            altered = _alterations(caller, decision, result.id, flow)
            records = record_after_commit(  # rule 4; queued now, in this order
                self.audit, now, decided, *altered, submitted, log=log, done="queued"
            )
        self.wake_relay()  # no need to wait for the audit commit: the relay's own "send"
        if records is not None:  # entry can only queue after these
            await records
        self.metrics.inc("isa_agent_submitted_total", int(result.created))
        if not result.created:  # the same idempotency key again (rule 5)
            repeat = message_event("submit", caller.client, result.id, req.to,
                                   outcome="idempotent_repeat", person=caller.actor)  # fmt: skip
            await self.repeats.count(("submit", caller.client, caller.actor.id, result.id),
                                     repeat, now)  # fmt: skip
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
        self, caller: Caller, req: SubmitRequest, decision: Decision, isa: Isa, now: datetime
    ) -> SubmitResponse:
        """Rule 12: hold a REVIEW decision for review, unsent; 202 ``review_pending``. The
        person submitting must be named: a second person reviews it, never they."""
        if not caller.actor.is_person:
            await self.audit.record(_decision_event(caller, decision, req, None), now)
            require_person(caller.actor, "this referral needs review by a second person; "
                           "nothing was held or sent")  # fmt: skip
        actor = caller.actor
        review = _held_review(str(uuid.uuid4()), caller.client, actor, req, decision, isa, now,
                              self.review_hold)  # fmt: skip
        keyed = req.idempotency_key is not None
        held = await self.store.hold_for_review(
            review, idempotency_key=req.idempotency_key, request=_body(req),
            body_sha256=_body_sha256(req) if keyed else "",
        )  # fmt: skip
        review = held.review
        if not held.created:  # the same idempotency key again (rule 5)
            repeat = message_event("submit", caller.client, review.id, req.to,
                                   outcome="idempotent_repeat", person=actor)  # fmt: skip
            await self.repeats.count(("submit", caller.client, actor.id, review.id), repeat, now)
            return await self._submit_answer(review)
        self.metrics.inc("isa_agent_reviews_held_total")
        flow = _flow(decision, req, decision.lawful_basis)
        detail = f"held for review by role {review.role} until {format_time(review.due_at)}"
        submitted = message_event("submit", caller.client, review.id, req.to, flow,
                                  outcome="review_pending", detail=detail,
                                  person=actor)  # fmt: skip
        decided = _decision_event(caller, decision, req, review.id)
        await record_after_commit(self.audit, now, decided, submitted, log=log, done="held")
        return submit_answer(review)

    async def _submit_answer(self, review: ReviewRecord) -> SubmitResponse:
        """A repeat's answer: where the review stands (once approved, its message's status)."""
        if review.message_id is None:
            return submit_answer(review)
        status = await self.store.message_status(review.message_id)
        return submit_answer(review, status.status.value)

    async def _sendable(
        self, caller: Caller, req: SubmitRequest, decision: Decision, isa: Isa, now: datetime
    ) -> Manifest:
        """Rule 7: the manifest to seal under, or the named 503, audited and counted."""
        try:
            manifest = sendable_manifest(self.trust, now, isa)
        except TrustUnavailable as exc:
            await self._refused(caller, req, decision, "trust_unavailable", exc.message, now)
            raise TrustUnavailable(exc.message, retry_after=self.retry_after) from None
        block = send_block(manifest, sender_key=self.signing_key.key_id, recipient=req.to, now=now)
        if block is not None:
            await self._refused(caller, req, decision, block.cause, block.detail, now)
            retry = None if block.cause == "sender_certificate_expired" else self.retry_after
            raise _REFUSALS[block.cause](block.detail, retry_after=retry)
        return manifest

    async def _refused(
        self, caller: Caller, req: SubmitRequest, decision: Decision, cause: str, detail: str,
        now: datetime,
    ) -> None:  # fmt: skip
        """Count a refusal and audit the first of its window (rules 5 and 7)."""
        self.metrics.refuse(cause)
        flow = _flow(decision, req, decision.lawful_basis)
        event = message_event("submit", caller.client, None, req.to, flow, outcome=cause,
                              detail=detail, person=caller.actor)  # fmt: skip
        key = ("send_refused", caller.client, caller.actor.id, cause, req.to)
        if await self.repeats.admit(key, event, now):
            await self.audit.record(event, now)

    async def _consulted(self, key: tuple[str, ...], event: AuditEvent, now: datetime) -> None:
        """Rule 9: record the first consultation of its window (before the answer goes out:
        a failure is a 503, nothing is consulted unlogged); count the rest."""
        if await self.repeats.admit(key, event, now):
            await self.audit.record(event, now)

    def _record_all(
        self, at: datetime, events: Sequence[AuditEvent]
    ) -> Awaitable[list[BaseException | None]]:
        """Record ``events`` in this order, in one group commit (one fsync, not one each).
        ``AuditLog.record`` queues each entry when called, so they are queued on return, in
        order; await the result for each one's outcome: None, or the exception it raised."""
        records = [self.audit.record(event, at) for event in events]
        return asyncio.gather(*records, return_exceptions=True)

    # -- reviews (rule 12) --------------------------------------------------------------------

    async def reviews(self, caller: Caller, after: int, limit: int) -> ReviewPage:
        now = self.clock()
        items = [review_view(r, now) for r in await self.store.reviews_page(after, limit)]
        await self._consult_service(caller, "review_list")  # rule 9: no payload value shown
        return ReviewPage(items=items, next_cursor=items[-1].cursor if items else after)

    async def review(self, caller: Caller, id: str) -> ReviewView:
        now = self.clock()
        review = await self.store.review(id)
        event = message_event("consult", caller.client, id, review.recipient, outcome="review",
                              person=caller.actor)  # fmt: skip
        await self._consulted(("consult", "review", caller.client, caller.actor.id, id),
                              event, now)  # fmt: skip
        return review_view(review, now)

    async def _reviewable(
        self, caller: Caller, id: str, action: ReviewAction, now: datetime
    ) -> tuple[ReviewRecord, Actor]:
        """Rule 12's first checks: 404, then 403 (the person), then 409 (pending), then the
        justification (400); a refused person or state is audited (once per window) first."""
        review = await self.store.review(id)
        actor = caller.actor
        person, role = (actor.id, actor.role) if actor.is_person else (None, None)
        try:
            check_reviewer(person, role, submitter=review.submitter, required=review.role)
            act(review.state, action)
        except ReviewRefused as exc:
            outcome = f"{action.value}_refused"
            event = review_event(review, caller.client, outcome, person=actor, detail=exc.message)
            key = ("review", caller.client, actor.id, id, outcome)
            if await self.repeats.admit(key, event, now):
                await self.audit.record(event, now)
            raise
        require_accountable(actor, f"a review's {action.value}")
        return review, actor

    async def narrow_review(self, caller: Caller, id: str, req: NarrowRequest) -> ReviewView:
        now = self.clock()
        caller = _because(caller, req.justification)
        review, person = await self._reviewable(caller, id, ReviewAction.NARROW, now)
        keep = narrow(
            shared_now(review), req.shared_fields, required=wire_required(review.message_type)
        )
        narrowed = await self.store.narrow_review(id, keep, by=_label(caller), at=now)
        event = review_event(narrowed, caller.client, "narrowed", person=person,
                             fields=keep)  # fmt: skip
        await record_after_commit(self.audit, now, event, log=log, done="narrowed")
        return review_view(narrowed, now)

    async def return_review(self, caller: Caller, id: str, req: ReturnRequest) -> ReviewView:
        now = self.clock()
        _review, person = await self._reviewable(caller, id, ReviewAction.RETURN, now)
        returned = await self.store.return_review(id, req.reason, by=_label(caller), at=now)
        event = review_event(returned, caller.client, "returned", person=person,
                             detail=f"reason: {req.reason}")  # fmt: skip
        self.metrics.inc("isa_agent_reviews_returned_total")
        await record_after_commit(self.audit, now, event, log=log, done="returned")
        return review_view(returned, now)

    async def approve_review(self, caller: Caller, id: str, req: ApproveRequest) -> ReviewView:
        now = self.clock()
        caller = _because(caller, req.justification)
        review, _person = await self._reviewable(caller, id, ReviewAction.APPROVE, now)
        held = await self._held_request(id)
        isa = self._isa(held.isa, now)
        prepared = prepare_approved(
            isa, sender=self.agency, recipient=held.to, purpose=held.purpose,
            message_type=held.type, payload=held.payload, keep=review.narrowed, now=now,
            ttl=self.ttl,
        )  # fmt: skip
        if prepared.spec is None:  # decided again: no longer allowed; it stays pending
            await self._approval_refused(caller, review, prepared.decision, now)
        manifest = await self._sendable(caller, held, prepared.decision, isa, now)
        sealed = self._seal(prepared, held.to, manifest, now)
        assert prepared.spec is not None
        approved = await self.store.approve_review(
            id, by=_label(caller), at=now, message_id=sealed.header.id,
            header=sealed.header.to_json(), frame=sealed.frame,
            expires_at=prepared.spec.expires_at,
        )  # fmt: skip
        await self._audit_approval(caller, approved, held, prepared, now)
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
        self, caller: Caller, review: ReviewRecord, decision: Decision, now: datetime
    ) -> None:
        """Rule 12: the fresh decision no longer lets it leave: audited, 403, still pending."""
        event = review_event(review, caller.client, "approve_refused", person=caller.actor,
                             detail=f"decided again: {decision.outcome}")  # fmt: skip
        await self.audit.record(event, now)
        raise Denied(
            f"decided again now, the ISA no longer lets this referral leave ({decision.outcome});"
            " it stays pending: return it, or approve it once the cause is cured",
            decision.reasons,
        )

    async def _audit_approval(
        self, caller: Caller, review: ReviewRecord, held: SubmitRequest, prepared: Prepared,
        now: datetime,
    ) -> None:  # fmt: skip
        """The review's approval, then the message's decision and submit, as a submit's: all
        name the reviewer, whose approval discloses it."""
        decision, person = prepared.decision, caller.actor
        assert prepared.spec is not None
        assert review.message_id is not None
        mid = review.message_id
        approved = review_event(review, caller.client, "approved", person=person,
                                detail=f"sent as message {mid}",
                                fields=decision.shared_fields)  # fmt: skip
        flow = _flow(decision, held, prepared.spec.lawful_basis)
        decided = _decision_event(caller, decision, held, mid)
        altered = _alterations(caller, decision, mid, flow)
        submitted = message_event("submit", caller.client, mid, held.to, flow, outcome="queued",
                                  detail=f"approved from review {review.id}",
                                  person=person)  # fmt: skip
        self.metrics.inc("isa_agent_reviews_approved_total")
        self.metrics.inc("isa_agent_submitted_total")
        await record_after_commit(self.audit, now, approved, decided, *altered, submitted,
                                  log=log, done="approved")  # fmt: skip

    async def events(self, caller: Caller, after: int, limit: int) -> StatusEventPage:
        page = event_page(await self.store.events_page(after, limit), after)
        await self._consult_service(caller, "event_list")  # rule 9: no payload value shown
        return page

    async def preview(self, caller: Caller, req: SubmitRequest) -> PreviewResponse:
        now = self.clock()
        isa = self.trust.isas(now).get(req.isa)
        if isa is None:
            parse_payload(req.type, req.payload)  # a broken payload is 422 whatever the ISA
            reason = f"No agreement {req.isa!r} is in force at this agency, so nothing is shared."
            answer = PreviewResponse(decision="DENY", shared_fields=[], withheld_fields=[],
                                     reasons=[reason])  # fmt: skip
        else:
            decision = prepare(
                isa, sender=self.agency, recipient=req.to, purpose=req.purpose,
                message_type=req.type, payload=req.payload, now=now, ttl=self.ttl,
            ).decision  # fmt: skip
            answer = PreviewResponse(
                decision=decision.outcome,
                shared_fields=list(decision.shared_fields),
                withheld_fields=_withheld(decision),
                reasons=list(decision.reasons),
            )
        event = AuditEvent(
            "consult", caller.client, None, req.to, isa_id=req.isa,
            isa_version=isa.version if isa is not None else None, purpose=req.purpose,
            message_type=req.type, outcome="preview", detail=f"decision {answer.decision}",
            fields_shared=tuple(answer.shared_fields),
            fields_withheld=tuple((w.path, w.reason) for w in answer.withheld_fields),
            subject_source=req.payload, person=caller.actor,
        )  # fmt: skip
        key = ("consult", "preview", caller.client, caller.actor.id, _body_sha256(req))
        await self._consulted(key, event, now)
        return answer

    async def message(self, caller: Caller, id: str) -> MessageStatusResponse:
        status = await self.store.message_status(id)
        now = self.clock()
        event = message_event("consult", caller.client, id, status.recipient,
                              outcome="message_status", person=caller.actor)  # fmt: skip
        await self._consulted(("consult", "message_status", caller.client, caller.actor.id, id),
                              event, now)  # fmt: skip
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

    async def inbox(self, caller: Caller, after: int, limit: int) -> InboxPage:
        page = await self.store.inbox_page(after, limit, unacked_only=True)
        self._require_for_reading(caller, page)  # rule 10
        return await self._hand_over(caller, page, after)

    async def pushed_page(self, caller: Caller, limit: int) -> InboxPage:
        """The webhook's page (oldest unacknowledged first), audited as read by ``caller``,
        the system: an automatic push into the agency's own case system, configured by the
        agency, which no person consults here (rule 10 does not apply; whoever opens it in
        the case system is the case system's to log)."""
        page = await self.store.inbox_page(0, limit, unacked_only=True)
        return await self._hand_over(caller, page, 0)

    async def _hand_over(
        self, caller: Caller, page: Sequence[StoredInboxItem], after: int
    ) -> InboxPage:
        """Decrypt ``page`` and audit every first read of its window before handing it over."""
        store = self.store
        items, delivered = [], []
        for item in page:
            try:
                payload = json.loads(await store.read_inbox_payload(item.id))
            except PayloadPurged:
                continue
            h = item.header
            flow = Flow.of_header(h)
            read = message_event("deliver", caller.client, item.id, item.sender, flow,
                                 outcome="read", person=caller.actor)  # fmt: skip
            delivered.append(read)
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
        if not items:  # rule 9: nothing disclosed, but the call is recorded
            event = AuditEvent(
                "consult",
                caller.client,
                outcome="inbox_page",
                detail="no unacknowledged delivery",
                person=caller.actor,
            )
            await self._consulted(("consult", "inbox_page", caller.client, caller.actor.id),
                                  event, now)  # fmt: skip
        delivered = [e for e in delivered if await self._first_read(e, now)]
        for outcome in await self._record_all(now, delivered):
            if isinstance(outcome, BaseException):
                raise outcome  # as before: no page is handed over unaudited
        next_cursor = items[-1].cursor if items else after
        return InboxPage(items=items, next_cursor=next_cursor)

    def _require_for_reading(self, caller: Caller, page: Sequence[StoredInboxItem]) -> None:
        """Rule 10: a page holding a delivery of a s62 flow needs a person and a reason."""
        if caller.actor.is_person and caller.actor.justification is not None:
            return
        isas = self.trust.isas(self.clock())
        for item in page:
            h = item.header
            ref = h.get("isa", {})
            isa_id, sha256 = str(ref.get("id", "")), str(ref.get("sha256", ""))
            isa = isas.version(isa_id, sha256) or isas.get(isa_id)
            if isa is not None and _s62_flows(
                isa, item.sender, self.agency, str(h.get("purpose")), str(h.get("type"))
            ):
                require_accountable(
                    caller.actor, f"delivery {item.id} arrived under a flow {isa.id} logs "
                    "under DPA 2018 s62"
                )  # fmt: skip

    async def _first_read(self, event: AuditEvent, now: datetime) -> bool:
        """Rule 5: True if this read of a delivery by this client and person is the first in
        its window."""
        person = event.person.id if event.person is not None else ""
        key = ("deliver", event.actor, person, event.message_id or "")
        return await self.repeats.admit(key, event, now)

    async def ack(self, caller: Caller, id: str) -> None:
        """Rule 5: the first acknowledgement gets an entry; repeats are counted."""
        now = self.clock()
        event = message_event("ack", caller.client, id, person=caller.actor)
        if await self.store.ack(id, now):
            await self.audit.record(event, now)
            return
        self.metrics.inc("isa_agent_repeated_acks_total")
        await self.repeats.count(("ack", caller.client, caller.actor.id, id), event, now)

    async def erase(self, caller: Caller, id: str) -> None:
        """Rule 11: shred the delivery's payload now, at the named person's request."""
        require_accountable(caller.actor, "an erasure on request")
        now = self.clock()
        shredded = await self.store.erase_inbox_payload(id, now)  # NotFound, LegalHold
        event = message_event("purge", caller.client, id, outcome="erased_on_request",
                              detail="shredded on request", person=caller.actor)  # fmt: skip
        if shredded:
            await record_after_commit(self.audit, now, event, log=log, done="erased")
        else:
            await self.repeats.count(("erase", caller.client, caller.actor.id, id), event, now)

    async def legal_hold(self, caller: Caller, id: str, held: bool) -> None:
        """Rule 11: place or release a legal hold on a delivery."""
        require_accountable(caller.actor, "a legal hold")
        now = self.clock()
        if await self.store.set_legal_hold(id, held, now):
            outcome = "placed" if held else "released"
            event = message_event("hold", caller.client, id, outcome=outcome, person=caller.actor)
            await record_after_commit(self.audit, now, event, log=log, done=f"hold {outcome}")

    async def case_event(
        self, caller: Caller, id: str, event: Literal["case_closed", "activity"]
    ) -> None:
        """Rule 11: the case system reports the delivery's case closed, or active, now."""
        now = self.clock()
        await self.store.record_case_event(id, event, now)
        entry = message_event("case_event", caller.client, id, outcome=event, person=caller.actor)
        if await self.repeats.admit(("case_event", caller.client, caller.actor.id, id, event),
                                    entry, now):  # fmt: skip
            await record_after_commit(self.audit, now, entry, log=log, done=f"reported {event}")

    async def isas(self, caller: Caller) -> list[IsaSummary]:
        """The ISAs this agency is a party to, each in the version in force (the others are
        none of its business)."""
        now = self.clock()
        mine = self.trust.isas(now).in_force()
        answer = [self._summary(isa, now) for isa in mine if isa.party(self.agency) is not None]
        await self._consult_service(caller, "isa_list")
        return answer

    async def _consult_service(self, caller: Caller, what: str) -> None:
        """Rule 9 for the calls about the agent rather than a message (no personal data)."""
        event = AuditEvent("consult", caller.client, outcome=what, person=caller.actor)
        key = ("consult", what, caller.client, caller.actor.id)
        await self._consulted(key, event, self.clock())

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

    async def metrics_text(self, caller: Caller) -> str:
        await self._consult_service(caller, "metrics")
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
