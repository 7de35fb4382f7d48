"""A small fake referral catalogue and a clean ISA written against it, for the engine's unit tests.

The engine takes its catalogue as a parameter, so these tests do not depend on
``federation.referrals``; the golden tables under ``tests/vectors/decisions`` use the real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from federation.isa import Isa, load_isa

__all__ = [
    "CLEAN_ISA",
    "FAKE_PATHS",
    "NOW",
    "FakeField",
    "fake_catalogue",
    "load_fake",
]

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "isa_defects"


@dataclass(frozen=True)
class FakeField:
    path: str
    data_classes: frozenset[str] = frozenset({"personal"})
    handling: frozenset[str] = frozenset()
    transforms: frozenset[str] = frozenset()


def _f(path: str, *classes: str, handling: tuple[str, ...] = (), transforms: tuple[str, ...] = ()
       ) -> FakeField:
    return FakeField(path, frozenset(classes or ("personal",)), frozenset(handling),
                     frozenset(transforms))


_FIELDS = [
    _f("synthetic", "admin"),
    _f("victim.name"),
    _f("victim.date_of_birth", transforms=("age_band",)),
    _f("victim.address", "personal", "sensitive_location",
       handling=("must_not_disclose_to:perpetrator",), transforms=("postcode_district",)),
    _f("victim.refuge_address", "sensitive_location", handling=("never_share",)),
    _f("victim.mental_health", "special_category"),
    _f("perpetrator.name"),
    _f("perpetrator.criminal_history", "criminal_offence", handling=("originator_control",)),
    _f("children[].name", "child"),
    _f("children[].date_of_birth", "child", transforms=("age_band",)),
    _f("dash.q1", "special_category", "criminal_offence"),
    _f("dash.q2"),
    _f("dash.score"),
    _f("incident_date", transforms=("year",)),
]
FAKE_PATHS: Mapping[str, FakeField] = {f.path: f for f in _FIELDS}


def fake_catalogue(message_type: str) -> Mapping[str, FakeField]:
    if message_type != "fake_referral":
        raise LookupError(message_type)
    return FAKE_PATHS


CLEAN_ISA = (FIXTURES / "clean.yaml").read_bytes()


def load_fake(data: bytes = CLEAN_ISA, source: str = "clean.yaml",
              known: tuple[str, ...] | None = None) -> Isa:
    return load_isa(source, data, catalogue=fake_catalogue, known_agencies=known)
