"""What the agent does with each message taken from its inbox queue.

Envelopes (v1 or v2), in order. ``federation.receive.receive`` runs every check, steps 1-13 of
docs/protocol.md section 6 (frame, signature, recipient, expiry, clock skew, replay, decrypt,
ISA, our ISA copy, schema, lawful basis, ISA fields, AMQP ``user_id``), in one call that returns
the accepted message or one reason; this module only does the I/O around it:

0.  wait while trust is fail-closed (the message stays unacknowledged in the broker: a durable
    quarantine; nothing is accepted under a stale manifest);
1-13. ``receive`` with the manifest held and the ISAs it has in force, read together (on
    ``key_unknown``, re-read the keyring once and call it again: a key may have been rotated
    meanwhile; on ``isa_version_unknown``, the sender holds a newer manifest than ours: fetch
    ours once, ``agent.trust`` rule 9, and call it again with the newer one if that brought
    one, so the two never disagree silently);
14. store durably, completing step 6: the id is recorded atomically with the delivery, so a
    replay or redelivery is never stored or delivered twice (``receive`` is told
    ``deduplicated_when_stored``); while the store is unavailable (a full disk) retry in place,
    never requeue: requeues count towards the quorum queue's delivery limit, which dead-letters
    the message;
15. send the signed ``delivered`` receipt (again for a duplicate, so a sender whose first receipt
    was lost still settles), then ack the broker.

A rejected envelope is dead-lettered (kept for the operator) and, when its sender is
authenticated, answered with a signed ``rejected`` receipt carrying only the reason code.
Receipts for our own messages, in order: the signature against the manifest; the AMQP
``user_id`` is the issuer's broker user; the receipt is for an envelope we sent; then
``federation.receipts.accept_receipt`` (addressed to us, issued by the envelope's recipient,
citing the hash of the frame we sent). Only then does it move the outbox (its event may change
nothing, ``federation.outbox`` rules 5-9). A refused receipt is audited (ids and reason codes
only), counted in ``isa_agent_receipts_refused_total`` and dead-lettered.

A replay (an envelope already stored) and a refused frame (unknown kind, refused receipt, an
envelope refused before its sender was authenticated) are audited too: the first per sender
(or AMQP user) and reason in a window, the rest counted into one ``repeat`` entry
(``agent.audit.repeats``), so a flood cannot fill the disk. An authenticated sender's rejected
envelope still gets an entry each.

Its dependencies are explicit and frozen (the store protocol, the publisher, the audit sink and
its repeat counter, trust (manifest and ISAs), the keyring holder, the signing key, the clock,
metrics, and the limits it checks); the keyring is re-read through the holder
(``agent.keyrotation`` rule 7), receipts go out through the publisher (``agent.publisher``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from agent.audit import (
    AuditEvent,
    AuditSink,
    Flow,
    RepeatAudit,
    message_event,
    record_after_commit,
)
from agent.clock import Clock
from agent.errors import NotFound, StoreUnavailable, TransportError
from agent.keyrotation import KeyringHolder
from agent.metrics import Metrics
from agent.publisher import Publisher
from agent.store import Store
from agent.transport import Delivery, Outcome
from agent.trust import Trust
from federation.canonical import canonical_json
from federation.envelope import Routing
from federation.errors import ReceiptRejected
from federation.keys import SigningKey
from federation.pipeline import leaf_paths
from federation.receipts import Receipt, accept_receipt, make_receipt, verify_receipt
from federation.receive import (
    Accepted,
    ReceiverFacts,
    Refused,
    deduplicated_when_stored,
    receive,
)

__all__ = ["Receiver"]

log = logging.getLogger(__name__)

_RETRY_PAUSE = 1.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """The consumer's handler: one :class:`Delivery` in, one :class:`Outcome` out."""

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
    #: called once a new delivery is committed to the inbox (wakes the webhook pusher)
    on_stored: Callable[[], None]
    max_skew: timedelta
    max_ciphertext: int

    async def __call__(self, delivery: Delivery) -> Outcome:
        if delivery.kind == "receipt":
            return await self._on_receipt(delivery)
        if delivery.kind != "envelope":
            log.warning("dead-lettering a message of unknown kind")
            await self._audit_refused(delivery, "unknown_kind", "not an envelope or a receipt")
            return Outcome.REJECT
        return await self._on_envelope(delivery)

    async def _audit_refused(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Audit a frame refused before it was authenticated: the first per broker user and
        reason in a window gets an entry, later ones are counted (``agent.audit.repeats``)."""
        sender = delivery.user_id or "-"
        detail = f"{detail} (AMQP user_id {sender})"[:2000]
        event = message_event("reject", "agent", delivery.message_id, outcome=reason, detail=detail)
        now = self.clock()
        if await self.repeats.admit(("reject", sender, reason), event, now):
            await self.audit.record(event, now)

    async def _audit_replay(self, header: Routing, now: datetime) -> None:
        """Audit an envelope that was already stored (a replay or a redelivery): the first per
        sender in a window gets an entry, later ones are counted (``agent.audit.repeats``)."""
        detail = "already stored: not delivered again; the delivered receipt was sent again"
        event = message_event(
            "reject", "agent", header.id, header.sender, outcome="replay", detail=detail
        )
        if await self.repeats.admit(("replay", header.sender), event, now):
            await self._audit_stored(event, now)

    async def _wait_for_trust(self) -> None:
        # 0. quarantine; validity is time-driven (expiry), so poll rather than wait on an event
        while not self.trust.state.can_send(self.clock()):  # noqa: ASYNC110
            await asyncio.sleep(_RETRY_PAUSE)

    def _receive(self, delivery: Delivery, now: datetime) -> Accepted | Refused:
        manifest = self.trust.manifest  # with the ISAs it has in force: one consistent view
        assert manifest is not None  # step 0 waited for a valid one; none is ever dropped
        facts = ReceiverFacts(
            recipient=self.agency, manifest=manifest, registry=self.trust.isas(now),
            keyring=self.keys.current, max_skew=self.max_skew, max_ciphertext=self.max_ciphertext,
        )  # fmt: skip
        return receive(
            delivery.body, user_id=delivery.user_id, facts=facts, now=now,
            seen=deduplicated_when_stored,  # step 6 is completed by the store (step 14)
        )  # fmt: skip

    async def _on_envelope(self, delivery: Delivery) -> Outcome:
        await self._wait_for_trust()
        now = self.clock()
        accepted = self._receive(delivery, now)  # 1-13.
        if (
            isinstance(accepted, Refused)
            and accepted.reason == "key_unknown"  # 7. a key may have rotated meanwhile:
            and await self.keys.reload()  # re-read the keyring and try once more
        ):
            accepted = self._receive(delivery, now)
        if isinstance(accepted, Refused) and accepted.reason == "isa_version_unknown":
            accepted = await self._catch_up(delivery, now, accepted)  # 8. a newer manifest?
        if isinstance(accepted, Refused):
            return await self._reject(delivery, accepted)
        header = accepted.header
        fresh = await self._until_stored(
            lambda: self.store.accept_incoming(  # 14.
                envelope_id=header.id, sender=header.sender, header=header.to_json(),
                payload=canonical_json(accepted.payload), now=now,
            )
        )  # fmt: skip
        if fresh is None:
            return Outcome.REQUEUE
        self.metrics.inc("isa_agent_received_total" if fresh else "isa_agent_duplicates_total")
        if fresh:
            await self._audit_stored(
                message_event(
                    "receive",
                    "agent",
                    header.id,
                    header.sender,
                    Flow.of_header(header),
                    outcome="stored",
                    fields_shared=tuple(sorted(leaf_paths(accepted.payload))),
                    subject_source=accepted.payload,
                ),
                now,
            )
            self.on_stored()
        else:
            await self._audit_replay(header, now)
        return await self._receipt(header, accepted.envelope_sha256, "delivered", None)  # 15.

    async def _catch_up(
        self, delivery: Delivery, now: datetime, refused: Refused
    ) -> Accepted | Refused:
        """Step 8: the sender cites an ISA version our manifest does not list yet; fetch ours
        once (``agent.trust`` rule 9) and judge again under the newer one, if any."""
        held = self.trust.manifest.serial if self.trust.manifest is not None else 0
        if not await self.trust.catch_up(held):
            log.warning(
                "%s; our manifest (serial %d) is the newest we can get", refused.detail, held
            )
            return refused
        return self._receive(delivery, now)

    async def _until_stored(self, write: Callable[[], Awaitable[T]]) -> T | None:
        """Run a store write, retrying it here while the store is unavailable (a full disk).

        The delivery stays unacknowledged meanwhile. Requeueing it instead would count towards
        the quorum queue's delivery limit, and a few seconds of full disk would dead-letter
        (lose) every message in flight. Returns None (requeue) only once the consumer stops.
        """
        while True:
            try:
                return await write()
            except StoreUnavailable:
                log.error("cannot store an incoming message durably; it waits in the broker")
                await asyncio.sleep(_RETRY_PAUSE)
                if not self.publisher.consuming:
                    return None

    async def _audit_stored(self, event: AuditEvent, at: datetime) -> None:
        """Audit a delivery already committed to the inbox: if the audit log cannot be written
        (a full disk), say so loudly but keep the delivery (a requeue would only count towards
        the delivery limit, and the duplicate would not be audited either)."""
        await record_after_commit(self.audit, at, event, log=log, done="stored")

    async def _reject(self, delivery: Delivery, refused: Refused) -> Outcome:
        self.metrics.inc("isa_agent_rejected_total")
        log.warning("envelope rejected: %s %s", refused.reason, refused.detail)
        if refused.reply_to is None:  # anyone can send these: rate-limited, like replays
            detail = refused.detail or "envelope refused"
            await self._audit_refused(delivery, refused.reason, detail)
            return Outcome.REJECT
        event = message_event(
            "reject", "agent", delivery.message_id, outcome=refused.reason,
            detail=refused.detail[:2000],
        )
        await self.audit.record(event, self.clock())
        outcome = await self._receipt(
            refused.reply_to, refused.envelope_sha256, "rejected", refused.reason
        )
        return Outcome.REJECT if outcome is Outcome.ACK else outcome

    async def _receipt(
        self,
        header: Routing,
        sha256: str,
        status: Literal["delivered", "rejected"],
        reason: str | None,
    ) -> Outcome:
        frame = make_receipt(
            envelope_id=header.id, envelope_sha256=sha256, issuer=self.agency, to=header.sender,
            status=status, reason=reason, at=self.clock(), signing_key=self.signing_key,
        )  # fmt: skip
        try:
            await self.publisher.publish(header.sender, frame, message_id=header.id, kind="receipt")
        except TransportError:
            log.warning("could not send a %s receipt; the envelope will be redelivered", status)
            await asyncio.sleep(_RETRY_PAUSE)
            return Outcome.REQUEUE
        self.metrics.inc("isa_agent_published_total")
        return Outcome.ACK

    async def _on_receipt(self, delivery: Delivery) -> Outcome:
        manifest = self.trust.manifest
        if manifest is None:
            await asyncio.sleep(_RETRY_PAUSE)
            return Outcome.REQUEUE
        receipt: Receipt | None = None
        try:
            receipt = verify_receipt(delivery.body, manifest=manifest)
            entry = manifest.agency(receipt.issuer)
            if entry is None or delivery.user_id != entry.broker_user:
                raise ReceiptRejected("transport_identity")
            envelope_id = receipt.envelope_id
            sent = await self._until_stored(lambda: self.store.sent_envelope(envelope_id))
            if sent is None:
                return Outcome.REQUEUE
            accept_receipt(receipt, sender=self.agency, sent_to=sent.recipient,
                           sent_sha256=sent.frame_sha256)  # fmt: skip
        except ReceiptRejected as exc:
            return await self._refuse_receipt(delivery, receipt, exc.reason)
        except NotFound:
            assert receipt is not None  # only sent_envelope raises it
            return await self._settle(receipt, delivery.body, unknown=True)
        return await self._settle(receipt, delivery.body, unknown=False)

    async def _settle(self, receipt: Receipt, frame: bytes, *, unknown: bool) -> Outcome:
        """Move our message's status for an accepted receipt, then audit it."""
        outcome: str | None = "unknown"
        if unknown:
            log.warning("receipt for an envelope we did not send")
        else:
            outcome = await self._until_stored(
                lambda: self.store.record_receipt(
                    envelope_id=receipt.envelope_id, frame=frame, status=receipt.status,
                    reason=receipt.reason or "", at=self.clock(),
                )
            )  # fmt: skip
        if outcome is None:
            return Outcome.REQUEUE
        event = message_event(
            "receipt",
            "agent",
            receipt.envelope_id,
            receipt.issuer,
            outcome=receipt.reason or receipt.status,
            detail=outcome,
        )
        await self.audit.record(event, self.clock())
        self.metrics.inc("isa_agent_receipts_total")
        return Outcome.ACK

    async def _refuse_receipt(
        self, delivery: Delivery, receipt: Receipt | None, reason: str
    ) -> Outcome:
        """A receipt we must not believe: audited (ids and codes only; the first per broker user
        and reason in a window, the rest counted, so a flood cannot fill the log), counted in a
        metric, and dead-lettered for the operator (it may be evidence of an attack)."""
        self.metrics.inc("isa_agent_receipts_refused_total")
        log.warning("receipt refused: %s", reason)
        said = "" if receipt is None else f"; it said {receipt.status} ({receipt.reason or '-'})"
        event = message_event(
            "receipt",
            "agent",
            None if receipt is None else receipt.envelope_id,
            None if receipt is None else receipt.issuer,
            outcome="refused",
            detail=f"receipt refused: {reason}{said}",
        )
        now = self.clock()
        if await self.repeats.admit(("receipt", delivery.user_id or "-", reason), event, now):
            await self.audit.record(event, now)
        return Outcome.REJECT
