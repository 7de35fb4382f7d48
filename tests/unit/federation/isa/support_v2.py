"""The v2 fixtures (tests/fixtures/isa_v2): an ISA recording every ICO-code element, and defects.

``complete.yaml`` is written against the fake catalogue of
:mod:`tests.unit.federation.isa.support`; each other file is a copy of it with exactly one defect.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from federation.errors import PolicyError
from federation.isa import Isa, lint, parse_isa
from tests.unit.federation.isa.support import fake_catalogue

__all__ = ["COMPLETE", "TODAY", "V2", "lint_text", "parse_text"]

V2 = Path(__file__).resolve().parents[3] / "fixtures" / "isa_v2"
COMPLETE = (V2 / "complete.yaml").read_text()
TODAY = date(2026, 6, 1)


def parse_text(text: str, source: str = "complete.yaml") -> Isa:
    return parse_isa(source, text.encode(), catalogue=fake_catalogue)


def lint_text(text: str, source: str = "complete.yaml") -> list[str]:
    """Every problem lint finds, as ``file:line: message`` (parse errors included)."""
    try:
        isa = parse_text(text, source)
    except PolicyError as exc:
        return [str(p) for p in exc.problems]
    return [str(p) for p in lint(isa, today=TODAY)]
