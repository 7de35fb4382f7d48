"""What the agent tells its audit log, and the sink interface the audit log implements.

Rules:
1. One event per submit, policy decision, send, receive, reject, deliver (to the case system),
   ack, receipt, purge, key rotation and manifest change (DPA 2018 s62: who, what, when, under
   which agreement and purpose, to whom). Repeats of an event (a replayed envelope, a second
   ack, a re-read delivery) are counted into one ``repeat`` entry per window
   (:mod:`agent.audit_repeats`), so a flood is visible but cannot multiply the log.
2. Events carry field PATHS and reasons, never values. ``subject_source`` is the payload the
   event is about; the sink may only derive keyed hashes of the subjects' identifiers from it
   (for subject-access search) and must never store it.
3. ``record`` returns once the event is durable; if it cannot be, it raises
   ``agent.errors.StoreUnavailable`` and the operation that wanted to log it fails (no
   unlogged disclosure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["Action", "AuditEvent", "AuditSink", "NullAudit"]

Action = Literal[
    "submit",
    "decision",
    "send",
    "receive",
    "reject",
    "deliver",
    "ack",
    "receipt",
    "purge",
    "key_rotation",
    "manifest_change",
    "repeat",
]


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


class AuditSink(Protocol):
    """Where audit events go. ``record`` returns something to await that resolves once the
    entry is durable; :class:`agent.audit.AuditLog` queues the entry when ``record`` is CALLED,
    so entries are chained in call order even before anyone awaits them."""

    def record(self, event: AuditEvent, at: datetime) -> Awaitable[None]: ...


class NullAudit:
    """Records nothing (tests of other parts; never the default of a running agent)."""

    async def record(self, event: AuditEvent, at: datetime) -> None:
        return None
