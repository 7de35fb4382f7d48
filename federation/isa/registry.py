"""The ISAs an agent or the operator holds, each id at most once.

This module performs no I/O.

Rules:
1. ``get(id)`` answers the one version of each ISA in force (each id at most once).
2. ``other_versions`` are further versions held beside it (an earlier version a message may
   still cite in its grace window, or a newer one not yet in force); only :meth:`version`, which
   looks a text up by its sha256, answers them.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.errors import PolicyError
from federation.isa.linting import duplicate_isa_ids
from federation.isa.model import Flow, Isa

__all__ = ["IsaRegistry"]


class IsaRegistry:
    """Several loaded ISAs, each id at most once (the federation's central log of agreements)."""

    def __init__(self, isas: Iterable[Isa] = (), *, other_versions: Iterable[Isa] = ()) -> None:
        items = list(isas)
        problems = duplicate_isa_ids(items)
        if problems:
            raise PolicyError(problems)
        self._by_id = {isa.id: isa for isa in items}
        self._by_sha = {isa.sha256: isa for isa in [*other_versions, *items]}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, isa_id: object) -> bool:
        return isa_id in self._by_id

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, isa_id: str) -> Isa | None:
        return self._by_id.get(isa_id)

    def in_force(self) -> list[Isa]:
        """The one version of each ISA that ``get`` answers (rule 1), by id."""
        return [self._by_id[i] for i in sorted(self._by_id)]

    def held(self) -> list[Isa]:
        """Every version held, in force or beside it (rule 2)."""
        return list(self._by_sha.values())

    def version(self, isa_id: str, sha256: str) -> Isa | None:
        """The held text of ISA ``isa_id`` whose bytes hash to ``sha256`` (rule 2), if any."""
        isa = self._by_sha.get(sha256)
        return isa if isa is not None and isa.id == isa_id else None

    def add(self, isa: Isa) -> None:
        """Add one more ISA; a second ISA with the same id is a ``PolicyError``."""
        problems = duplicate_isa_ids([*self._by_id.values(), isa])
        if problems:
            raise PolicyError(problems)
        self._by_id[isa.id] = isa
        self._by_sha[isa.sha256] = isa

    def resolve_flow(
        self, sender: str, recipient: str, isa_id: str, purpose: str, message_type: str
    ) -> Flow | None:
        """The flow of ISA ``isa_id`` that covers this message, or None (deny)."""
        isa = self._by_id.get(isa_id)
        if isa is None:
            return None
        flows = isa.flows_for(sender, recipient, purpose, message_type)
        return flows[0] if flows else None
