"""The soak's ISA copies: the shipped agreements, in force across the whole simulated run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from devtools.soak.isas import SHIPPED, soak_isa_text, write_soak_isas
from devtools.soak.run import ISA_FILES
from federation.isa import load_isa

BUILT, LAST = date(2031, 3, 4), date(2033, 5, 6)


class TestSoakIsas:
    def test_each_copy_is_in_force_from_before_the_build_to_after_the_last_day(
        self, tmp_path: Path
    ) -> None:
        """effective_from the day before the build; effective_to and next_review after it."""
        for path in write_soak_isas(tmp_path, ISA_FILES, built=BUILT, last_day=LAST):
            header = load_isa(str(path), path.read_bytes()).doc.isa
            assert header.effective_from == date(2031, 3, 3)
            assert header.effective_to is not None
            assert header.effective_to > LAST
            assert header.review.next_review > LAST

    def test_a_copy_changes_nothing_but_the_three_dates_and_says_it_is_a_copy(
        self, tmp_path: Path
    ) -> None:
        """Flows, field sets and lawful bases are the shipped ones, line for line."""
        [path] = write_soak_isas(tmp_path, ISA_FILES[:1], built=BUILT, last_day=LAST)
        copy = path.read_text(encoding="utf-8").splitlines()
        shipped = (SHIPPED / ISA_FILES[0]).read_text(encoding="utf-8").splitlines()
        assert copy[0].startswith("# SOAK COPY of policies/")
        changed = [(a, b) for a, b in zip(shipped, copy[1:], strict=True) if a != b]
        assert [a.split(":")[0].strip() for a, _ in changed] == [
            "effective_from", "effective_to", "next_review",
        ]  # fmt: skip

    def test_a_file_without_its_dates_is_refused_not_copied_with_a_fixed_date(self) -> None:
        """A missing effective_to line is a ValueError naming the file."""
        text = "isa:\n  effective_from: 2026-01-01\n  review:\n    next_review: 2027-06-30\n"
        with pytest.raises(ValueError, match=r"x\.yaml: expected one effective_to line"):
            soak_isa_text(text, source="x.yaml", starts=BUILT, ends=LAST)
