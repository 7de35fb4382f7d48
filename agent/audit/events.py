"""What the agent tells its audit log, the sink interface, and the one rule for failing to log.

Rules:
1. One event per submit, policy decision, alteration, send, receive, reject, deliver (to the
   case system), ack, receipt, consultation, purge, key rotation, manifest change and act on a
   review (DPA 2018
   s62: who, what, when, why, under which agreement and purpose, to whom). Repeats of an event
   (a replayed envelope, a second ack, a re-read delivery, a polled status) are counted into
   one ``repeat`` entry per window (:mod:`agent.audit.repeats`), so a flood is visible but
   cannot multiply the log. The s62 kinds of processing map to actions thus:

   - collection: ``receive`` (a delivery stored in the inbox);
   - alteration: ``alter`` (fields generalised by minimisation at submit, their paths and how
     in ``fields_altered``); rectification does not exist yet;
   - consultation: ``deliver`` (a delivery read from the inbox), ``consult`` (a preview, a
     status read, an empty inbox page, the ISA list, the metrics, an audit search or export:
     the ``outcome`` names which);
   - disclosure: ``submit`` (the person, justification and recipient) and ``send`` (the
     transmission; it names the person who submitted, rule 5);
   - combination: none; the agent never combines one message's data with another's;
   - erasure: ``purge`` (a payload shredded by retention or on request, naming who asked and
     why, an envelope deleted, audit entries removed).

   Besides: ``hold`` (a legal hold placed or released), ``case_event`` (the case system
   reported a case's closure or activity, from which retention may count) and ``review`` (a
   referral held for review, narrowed, approved, returned, escalated or expired: the reviewer
   is the entry's person).
5. Every event names the person accountable (``person``: an :class:`agent.actor.Actor`, with
   the justification they gave). Without one the log records the system that acted
   (``system:<actor>``), except a ``send`` (:data:`INHERITS_SUBMITTER`), which names the
   person who submitted the message (``agent.audit.log`` rule 3).
2. Events carry field PATHS and reasons, never values. ``subject_source`` is the payload the
   event is about; the sink may only derive keyed hashes of the subjects' identifiers from it
   (for subject-access search) and must never store it.
3. ``record`` resolves once the event is durable, or raises ``agent.errors.StoreUnavailable``.
   What that failure does depends on whether the operation's own effect is already durable:
   BEFORE (a refused submit, a page of the inbox about to be handed over, a rejected envelope):
   the operation fails (the API answers 503, the consumer does not ack): no unlogged disclosure.
   AFTER a durable commit (a queued submit, a publish, a stored delivery): undoing the commit
   would lose or double the message, so :func:`record_after_commit` keeps the operation, and
   writes an ERROR line naming the action and message id to the agent's log. The s62 gap is
   then visible only there and as a message the store holds with no matching audit entry; the
   chain itself stays intact (no entry was written, none is missing from it).
4. An event about a message is built by :func:`message_event` from what the caller has: the
   message id, the other agency, and its :class:`Flow` (ISA, purpose, type, risk, basis).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agent.actor import Actor
from agent.errors import StoreUnavailable

if TYPE_CHECKING:
    from federation.envelope import Header

__all__ = [
    "INHERITS_SUBMITTER",
    "Action",
    "AuditEvent",
    "AuditSink",
    "Flow",
    "NullAudit",
    "message_event",
    "record_after_commit",
]

Action = Literal[
    "submit",
    "decision",
    "alter",
    "send",
    "receive",
    "reject",
    "deliver",
    "ack",
    "receipt",
    "purge",
    "key_rotation",
    "manifest_change",
    "consult",
    "hold",
    "case_event",
    "repeat",
    "review",
]

#: Rule 5: actions whose entry, naming nobody, names the person who submitted the message.
INHERITS_SUBMITTER: frozenset[str] = frozenset({"send"})


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: Action
    actor: str  # the API client, or "agent" for the agent's own work
    message_id: str | None = None
    counterparty: str | None = None  # the other agency
    isa_id: str | None = None
    isa_version: str | None = None
    purpose: str | None = None
    message_type: str | None = None
    risk: str | None = None
    lawful_basis: Mapping[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # PERMIT/DENY/REVIEW, delivered/rejected, a reason code
    fields_shared: tuple[str, ...] = ()
    fields_withheld: tuple[tuple[str, str], ...] = ()  # (path, reason)
    detail: str = ""
    subject_source: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    person: Actor | None = None  # rule 5: the person accountable (None: the system)
    fields_altered: tuple[tuple[str, str], ...] = ()  # (path, how) generalised


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """The agreement a message travels under: what s62 asks of every entry about it."""

    isa_id: str
    isa_version: str
    purpose: str
    message_type: str
    risk: str
    lawful_basis: Mapping[str, Any]

    @classmethod
    def of_header(cls, header: Header | Mapping[str, Any]) -> Flow:
        """The flow an envelope header states (the model, or its JSON as the store keeps it)."""
        if isinstance(header, Mapping):
            isa = header["isa"]
            return cls(
                isa_id=isa["id"],
                isa_version=isa["version"],
                purpose=header["purpose"],
                message_type=header["type"],
                risk=header["risk"],
                lawful_basis=header["lawful_basis"],
            )
        return cls(
            isa_id=header.isa.id,
            isa_version=header.isa.version,
            purpose=header.purpose,
            message_type=header.type,
            risk=header.risk,
            lawful_basis=header.lawful_basis,
        )


def message_event(
    action: Action,
    actor: str,
    message_id: str | None,
    counterparty: str | None = None,
    flow: Flow | None = None,
    *,
    outcome: str | None = None,
    detail: str = "",
    fields_shared: tuple[str, ...] = (),
    fields_withheld: tuple[tuple[str, str], ...] = (),
    subject_source: Mapping[str, Any] | None = None,
    person: Actor | None = None,
    fields_altered: tuple[tuple[str, str], ...] = (),
) -> AuditEvent:
    """Rule 4: an event about message ``message_id``, exchanged with ``counterparty``; without
    a ``flow`` the log fills it in from the message's earlier entries."""
    if flow is None:
        flow_fields: dict[str, Any] = {}
    else:
        flow_fields = {
            "isa_id": flow.isa_id,
            "isa_version": flow.isa_version,
            "purpose": flow.purpose,
            "message_type": flow.message_type,
            "risk": flow.risk,
            "lawful_basis": flow.lawful_basis,
        }
    return AuditEvent(
        action,
        actor,
        message_id,
        counterparty,
        outcome=outcome,
        detail=detail,
        fields_shared=fields_shared,
        fields_withheld=fields_withheld,
        subject_source=subject_source,
        person=person,
        fields_altered=fields_altered,
        **flow_fields,
    )


class AuditSink(Protocol):
    """Where audit events go. ``record`` returns something to await that resolves once the
    entry is durable; :class:`agent.audit.AuditLog` queues the entry when ``record`` is CALLED,
    so entries are chained in call order even before anyone awaits them."""

    def record(self, event: AuditEvent, at: datetime) -> Awaitable[None]: ...


class NullAudit:
    """Records nothing (tests of other parts; never the default of a running agent)."""

    async def record(self, event: AuditEvent, at: datetime) -> None:
        return None


def record_after_commit(
    sink: AuditSink, at: datetime, *events: AuditEvent, log: logging.Logger, done: str
) -> Awaitable[bool]:
    """Rule 3, AFTER a durable commit: queue ``events`` now, in this order (one group commit),
    and return what to await: True once all are recorded; if the log cannot be written, False
    after an ERROR line on ``log`` ("<done> <message id> but could not write its audit entry").
    Any error but ``StoreUnavailable`` (a bug) propagates."""
    records = [sink.record(event, at) for event in events]
    message_id = events[0].message_id if events else None
    return _after_commit(records, message_id, log, done)


async def _after_commit(
    records: list[Awaitable[None]], message_id: str | None, log: logging.Logger, done: str
) -> bool:
    if len(records) == 1:  # the common case, without gather's wrapping
        outcomes: list[BaseException | None] = [await _outcome(records[0])]
    else:
        outcomes = await asyncio.gather(*records, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, StoreUnavailable):
            raise outcome
    if all(outcome is None for outcome in outcomes):
        return True
    log.error("%s %s but could not write its audit entry", done, message_id)
    return False


async def _outcome(record: Awaitable[None]) -> BaseException | None:
    try:
        await record
    except Exception as exc:
        return exc
    return None
