"""Information Sharing Agreements: the public entry point (model, loading, lint, evaluation).

This module performs no I/O: callers read ISA files and pass their bytes, and pass ``now``.

The pieces live in sibling modules, re-exported here:

- :mod:`federation.isa_model`   the policy language as strict frozen models; :class:`Isa`
- :mod:`federation.isa_load`    ``load_isa(source, data)`` with ``file:line`` errors
- :mod:`federation.isa_lint`    ``lint(isa, today=...)``: every DESIGN check
- :mod:`federation.isa_plan`    one flow at one risk level compiled to released / withheld
- :mod:`federation.isa_eval`    ``evaluate(...) -> Decision``
- :mod:`federation.isa_received` ``check_received(...)``: the receiving agent's check
- :mod:`federation.isa_explain` a plain-English summary for practitioners
- :mod:`federation.isa_codes`   the legal codes an ISA may use, in plain words
- :mod:`federation.isa_catalogue` how the engine reads the referral catalogue (injectable)

Rules: deny by default; ``never_share`` and ``deny_fields`` beat every allow list; a registry
holds each ISA id once.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.errors import PolicyError
from federation.isa_catalogue import Catalogue, default_catalogue
from federation.isa_eval import Decision, ReferralFacts, WithheldField, evaluate
from federation.isa_explain import explain
from federation.isa_lint import check_errors, duplicate_isa_ids, lint
from federation.isa_load import load_isa, parse_isa
from federation.isa_model import RISK_LEVELS, Flow, Isa, IsaDocument, RiskLevel
from federation.isa_received import check_received

__all__ = [
    "RISK_LEVELS",
    "Catalogue",
    "Decision",
    "Flow",
    "Isa",
    "IsaDocument",
    "IsaRegistry",
    "ReferralFacts",
    "RiskLevel",
    "WithheldField",
    "check_errors",
    "check_received",
    "default_catalogue",
    "evaluate",
    "explain",
    "lint",
    "load_isa",
    "parse_isa",
]


class IsaRegistry:
    """Several loaded ISAs, each id at most once (the federation's central log of agreements)."""

    def __init__(self, isas: Iterable[Isa] = ()) -> None:
        items = list(isas)
        problems = duplicate_isa_ids(items)
        if problems:
            raise PolicyError(problems)
        self._by_id = {isa.id: isa for isa in items}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, isa_id: object) -> bool:
        return isa_id in self._by_id

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, isa_id: str) -> Isa | None:
        return self._by_id.get(isa_id)

    def add(self, isa: Isa) -> None:
        """Add one more ISA; a second ISA with the same id is a ``PolicyError``."""
        problems = duplicate_isa_ids([*self._by_id.values(), isa])
        if problems:
            raise PolicyError(problems)
        self._by_id[isa.id] = isa

    def resolve_flow(
        self, sender: str, recipient: str, isa_id: str, purpose: str, message_type: str
    ) -> Flow | None:
        """The flow of ISA ``isa_id`` that covers this message, or None (deny)."""
        isa = self._by_id.get(isa_id)
        if isa is None:
            return None
        flows = isa.flows_for(sender, recipient, purpose, message_type)
        return flows[0] if flows else None
