"""The soak's own ISA files: copies of shipped ones with dates relative to the soak's start.

Rules:
1. The shipped ISAs (``policies/*.yaml``) carry fixed dates (in force from 2026-01-01 to
   2027-12-31, reviewed by 2027-06-30); a soak of 800 simulated days from today crosses them.
   So the soak writes copies whose ``effective_from`` is a day before its federation is built
   and whose ``effective_to`` and ``review.next_review`` lie 60 days after its last simulated
   day (beyond the monitoring's 30-day warning: a person's date is not the soak's subject).
   Nothing else in a file changes: flows, field sets and lawful bases are the shipped ones.
2. Each copy says in its first line that it is a soak copy (SYNTHETIC, like the original).
3. The dates are lines of the file's ``isa:`` header; a file without exactly one of each is
   refused (:class:`ValueError`) rather than copied with a fixed date left in it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

__all__ = ["SHIPPED", "write_soak_isas"]

SHIPPED = Path(__file__).resolve().parents[2] / "policies"

_DATE_KEYS = ("effective_from", "effective_to", "next_review")


def _replace(text: str, key: str, value: date, source: str) -> str:
    pattern = re.compile(rf"^(\s+{key}:) \d{{4}}-\d{{2}}-\d{{2}}$", re.MULTILINE)
    replaced, count = pattern.subn(rf"\g<1> {value.isoformat()}", text)
    if count != 1:
        raise ValueError(f"{source}: expected one {key} line, found {count}")
    return replaced


def soak_isa_text(text: str, *, source: str, starts: date, ends: date) -> str:
    """The ISA ``text`` in force from ``starts`` to ``ends`` and reviewed on ``ends`` (rule 1)."""
    for key, value in zip(_DATE_KEYS, (starts, ends, ends), strict=True):
        text = _replace(text, key, value, source)
    header = (
        f"# SOAK COPY of policies/{source}: dates moved for the time-travel soak (devtools.soak)\n"
    )
    return header + text


def write_soak_isas(
    out: Path, files: list[str], *, built: date, last_day: date, shipped: Path = SHIPPED
) -> list[Path]:
    """Write the soak copies of ``files`` (names in ``shipped``) into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    starts, ends = built - timedelta(days=1), last_day + timedelta(days=60)
    written = []
    for name in files:
        text = (shipped / name).read_text(encoding="utf-8")
        path = out / name
        path.write_text(soak_isa_text(text, source=name, starts=starts, ends=ends), "utf-8")
        written.append(path)
    return written
