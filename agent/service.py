"""The agent's behaviour behind the local API (implements ``agent.api_models.AgentService``).

Rules:
1. ``submit`` answers 202 only after the sealed envelope is committed to the outbox; the relay
   (``agent.relay``) publishes it later. Nothing is sent for DENY or REVIEW.
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
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.api_models import (
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
    PreviewResponse,
    ReadinessResponse,
    ReceiptView,
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
from agent.store import PayloadPurged, Store
from agent.trust import Trust, sendable_manifest
from federation.canonical import canonical_json, format_time
from federation.envelope import WireVersion, seal_envelope
from federation.isa import Decision, Isa, explain
from federation.keys import SigningKey
from federation.manifest import Manifest
from federation.pipeline import prepare
from federation.referrals import parse_payload
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


def _body_sha256(req: SubmitRequest) -> str:
    body = req.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"})
    return hashlib.sha256(canonical_json(body)).hexdigest()


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

    def _isa(self, isa_id: str, now: datetime) -> Isa:
        isa = self.trust.isas(now).get(isa_id)
        if isa is None:
            raise Denied(f"no ISA {isa_id!r} is in force at this agency", [])
        return isa

    async def submit(self, client: str, req: SubmitRequest) -> SubmitResponse:
        now = self.clock()
        isa = self._isa(req.isa, now)
        prepared = prepare(
            isa, sender=self.agency, recipient=req.to, purpose=req.purpose,
            message_type=req.type, payload=req.payload, now=now, ttl=self.ttl,
        )  # fmt: skip
        decision = prepared.decision
        if prepared.spec is None:
            await self.audit.record(_decision_event(client, decision, req, None), now)
            self.metrics.inc("isa_agent_denied_total")
            verb = "needs human review" if decision.outcome == "REVIEW" else "is not permitted"
            raise Denied(f"this referral {verb} under {isa.id}", decision.reasons)
        manifest = await self._sendable(client, req, decision, isa, now)  # rule 7
        key = manifest.current_encryption_key(req.to, now)
        if key is None:  # pragma: no cover - _sendable checked it (federation.sending rule 2)
            raise RecipientKeyUnavailable(f"{req.to} has no current encryption key")
        sealed = seal_envelope(
            prepared.payload, prepared.spec, signing_key=self.signing_key,
            recipient_public=key.public_bytes(), now=now, version=self.send_version,
        )  # fmt: skip
        if sealed.ciphertext_length > self.max_ciphertext:
            raise PayloadTooLarge("the sealed referral is over [limits] max_ciphertext_bytes")
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
