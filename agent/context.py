"""Everything a running agent holds, built once from :class:`agent.config.Settings`.

Rules: no module-level state; every long-lived resource hangs off one :class:`AgentContext`
that :mod:`agent.runtime` opens and closes; time comes from ``clock`` so tests can inject it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agent.audit import AuditSink, NullAudit, RepeatAudit
from agent.clock import Clock, utcnow
from agent.config import Settings
from agent.errors import Denied, TrustUnavailable
from agent.metrics import Metrics
from agent.store import SqliteStore
from agent.transport import AmqpTransport
from agent.trust import TrustHolder
from federation.errors import PolicyError
from federation.isa import Isa, IsaRegistry, load_isa
from federation.keys import Keyring, SigningKey
from federation.manifest import Manifest

__all__ = ["AgentContext", "Clock", "load_registry", "utcnow"]

def load_registry(policies_dir: Path) -> IsaRegistry:
    """Every ISA file in ``policies_dir``; a broken file stops the agent (PolicyError)."""
    isas, problems = [], []
    for path in sorted(policies_dir.glob("*.yaml")):
        try:
            isas.append(load_isa(str(path), path.read_bytes()))
        except PolicyError as exc:
            problems += exc.problems
    if problems:
        raise PolicyError(problems)
    return IsaRegistry(isas)


@dataclass
class AgentContext:
    settings: Settings
    store: SqliteStore
    trust: TrustHolder
    registry: IsaRegistry
    signing_key: SigningKey
    keyring: Keyring
    clock: Clock = utcnow
    transport: AmqpTransport | None = None
    metrics: Metrics = field(default_factory=Metrics)
    audit: AuditSink = field(default_factory=NullAudit)
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    inbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    #: repeated events (replays, second acks, re-reads), counted into the audit log
    repeats: RepeatAudit | None = None

    def __post_init__(self) -> None:
        if self.repeats is None:
            self.repeats = RepeatAudit(self.audit)

    @property
    def repeat_audit(self) -> RepeatAudit:
        assert self.repeats is not None  # set in __post_init__
        return self.repeats

    @property
    def agency(self) -> str:
        return self.settings.agency

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.settings.limits.message_ttl_hours)

    def isa(self, isa_id: str) -> Isa:
        isa = self.registry.get(isa_id)
        if isa is None:
            raise Denied(f"no ISA {isa_id!r} is in force at this agency", [])
        return isa

    def sendable_manifest(self, now: datetime, isa: Isa) -> Manifest:
        """The manifest to send under, or TrustUnavailable (fail closed)."""
        manifest = self.trust.manifest
        if manifest is None or not self.trust.state.can_send(now):
            raise TrustUnavailable("no valid federation manifest: sending is stopped (fail closed)")
        entry = manifest.isa(isa.id)
        if entry is None or entry.sha256 != isa.sha256 or entry.version != isa.version:
            raise TrustUnavailable(
                f"the local copy of ISA {isa.id} differs from the one the federation publishes"
            )
        return manifest
