"""What the soak sent, what arrived, what was refused, and the figures it reports.

Rules:
1. Every submit is recorded with its answer: a 202 by its message id (``accepted``), anything
   else by its problem type (``refused``), marked provoked or not by the caller, which alone
   knows what it provoked (a revoked key's recipient, until its new key is published).
2. Every inbox item is recorded by its message id and recipient: an id seen twice is a
   duplicate, an accepted id never seen is lost, a delivered id that was never accepted (or
   arrived at another agency than the one it was sent to) is a stray.
3. :class:`Figures` is the soak's result; :meth:`Figures.table` prints it, and
   :meth:`Figures.problems` lists what breaks the claim "every accepted referral was delivered
   exactly once and nothing was refused except what the test provoked" (empty: it holds).
4. No payload is kept: only ids, agencies, problem types and counts (the payloads are
   synthetic, but a ledger of them would be a habit worth not having).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

__all__ = ["Figures", "Ledger", "Refusal"]


@dataclass(frozen=True)
class Refusal:
    """One submit that did not get 202 (rule 1)."""

    day: float
    sender: str
    recipient: str
    status: int
    problem: str
    provoked: bool


@dataclass
class Ledger:
    """Rules 1, 2 and 4."""

    accepted: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (from, to)
    refused: list[Refusal] = field(default_factory=list)
    deliveries: Counter[str] = field(default_factory=Counter)  # message id -> times seen
    strays: list[str] = field(default_factory=list)
    isa_versions: Counter[str] = field(default_factory=Counter)  # "ISA id version" -> deliveries

    def accept(self, message_id: str, sender: str, recipient: str) -> None:
        self.accepted[message_id] = (sender, recipient)

    def refuse(self, refusal: Refusal) -> None:
        self.refused.append(refusal)

    def deliver(self, message_id: str, recipient: str, isa: str = "") -> None:
        self.deliveries[message_id] += 1
        self.isa_versions[isa] += 1
        if self.accepted.get(message_id, ("", recipient))[1] != recipient:
            self.strays.append(message_id)

    @property
    def undelivered(self) -> list[str]:
        return [m for m in self.accepted if m not in self.deliveries]

    @property
    def duplicated(self) -> list[str]:
        return sorted(m for m, n in self.deliveries.items() if n > 1)

    @property
    def unexpected(self) -> list[str]:
        """Delivered ids the soak never had accepted (rule 2)."""
        return sorted(m for m in self.deliveries if m not in self.accepted)

    def counted(self, figures: Figures) -> Figures:
        """``figures`` with this ledger's counts (rule 3)."""
        refused = self.refused
        return replace(
            figures, accepted=len(self.accepted), delivered=len(self.deliveries),
            lost=len(self.undelivered), duplicated=len(self.duplicated),
            strays=len(self.strays) + len(self.unexpected),
            refused_provoked=sum(1 for r in refused if r.provoked),
            refused_unprovoked=sum(1 for r in refused if not r.provoked),
            refusal_causes=dict(Counter(r.problem.rsplit(":", 1)[-1] for r in refused)),
            deliveries_by_isa=dict(self.isa_versions),
        )  # fmt: skip


@dataclass
class Figures:
    """The soak's result (rule 3); counts are over the whole run."""

    agencies: int = 0
    first_day: float = 0.0
    days: float = 0.0
    steps: int = 0
    step_hours: float = 0.0
    key_rotations: int = 0
    key_rotations_by_agency: dict[str, int] = field(default_factory=dict)
    agency_renewals: int = 0
    agency_renewals_by_agency: dict[str, int] = field(default_factory=dict)
    signer_renewals: int = 0
    manifest_serials: int = 0
    manifest_resigns: int = 0
    revocations: int = 0
    isa_version_changes: int = 0
    isa_version_change_note: str = ""
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    strays: int = 0
    refused_provoked: int = 0
    refused_unprovoked: int = 0
    refusal_causes: dict[str, int] = field(default_factory=dict)
    deliveries_by_isa: dict[str, int] = field(default_factory=dict)  # "ISA id version" -> n
    receipts_delivered: int = 0
    sender_statuses: dict[str, int] = field(default_factory=dict)
    revocation_window_seconds: float = 0.0
    health_samples: dict[str, int] = field(default_factory=dict)
    monitoring: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    run_problems: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What breaks the soak's claim (rule 3); empty when it holds."""
        found = list(self.run_problems)
        if self.lost:
            found.append(f"{self.lost} accepted referrals were never delivered")
        if self.duplicated:
            found.append(f"{self.duplicated} referrals were delivered more than once")
        if self.strays:
            found.append(f"{self.strays} deliveries the soak never sent or sent elsewhere")
        if self.refused_unprovoked:
            causes = ", ".join(f"{k}: {v}" for k, v in sorted(self.refusal_causes.items()))
            found.append(f"{self.refused_unprovoked} submits refused unprovoked ({causes})")
        if self.receipts_delivered != self.accepted:
            found.append(f"senders hold {self.sender_statuses} for {self.accepted} accepted")
        return found

    def rows(self) -> list[tuple[str, str]]:
        def per(by: dict[str, int]) -> str:
            return ", ".join(f"{a} {n}" for a, n in sorted(by.items()))

        last = self.first_day + self.days
        rotations = f"{self.key_rotations} ({per(self.key_rotations_by_agency)})"
        renewals = f"{self.agency_renewals} ({per(self.agency_renewals_by_agency)})"
        serials = f"{self.manifest_serials} ({self.manifest_resigns} by re-signing)"
        return [
            ("agencies (real agent processes)", str(self.agencies)),
            ("days simulated", f"{self.days:.1f} (federation days {self.first_day:g}-{last:.1f})"),
            ("steps", f"{self.steps} (of at most {self.step_hours:g} h)"),
            ("key rotations (published)", rotations),
            ("agency certificate renewals", renewals),
            ("manifest-signer renewals", str(self.signer_renewals)),
            ("manifest serials published", serials),
            ("single-key revocations", str(self.revocations)),
            ("ISA version changes", f"{self.isa_version_changes} ({self.isa_version_change_note})"),
            ("messages accepted (202)", str(self.accepted)),
            ("delivered (exactly once)", str(self.delivered - self.duplicated)),
            ("lost", str(self.lost)),
            ("duplicated", str(self.duplicated)),
            ("refused, provoked", str(self.refused_provoked)),
            ("refused, unprovoked", str(self.refused_unprovoked)),
            ("delivered receipts at the senders", str(self.receipts_delivered)),
            ("revocation to new key published", f"{self.revocation_window_seconds:.1f} s real"),
            ("wall time", f"{self.wall_seconds / 60:.1f} min"),
        ]

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        if self.refusal_causes:
            causes = ", ".join(f"{k} {v}" for k, v in sorted(self.refusal_causes.items()))
            lines.append(f"{'refusal causes':<{width}}  {causes}")
        health = ", ".join(f"{k} {v}" for k, v in sorted(self.health_samples.items()))
        lines.append(f"{'agent /healthz samples':<{width}}  {health}")
        by_isa = ", ".join(f"{k}: {v}" for k, v in sorted(self.deliveries_by_isa.items()))
        lines.append(f"{'deliveries by ISA version':<{width}}  {by_isa}")
        watched = ", ".join(f"{k} x{v}" for k, v in sorted(self.monitoring.items()))
        lines.append(f"{'monitoring runs':<{width}}  {watched}")
        lines += [f"problem: {p}" for p in self.run_problems]
        return "\n".join(lines)
