"""Product code reads the time of day only through its clock seams (issue 12).

A test that builds a validity window at a fixed date and the product judging it by the wall
clock is a time bomb; the rule that prevents it is that only ``agent/clock.py`` and
``broker/clock.py`` read the wall clock, and everything else takes a ``clock`` or ``now``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("federation", "agent", "broker")
SEAMS = {Path("agent/clock.py"), Path("broker/clock.py")}
WALL_CLOCK_CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time"),
}  # fmt: skip


def wall_clock_reads(source: str) -> list[int]:
    """Line numbers of the calls in ``WALL_CLOCK_CALLS`` (``datetime.now()`` and the like)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in WALL_CLOCK_CALLS
        ):
            lines.append(node.lineno)
    return lines


def product_modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT) for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    )


class TestClockSeams:
    def test_the_checker_finds_a_wall_clock_read(self) -> None:
        """The checker itself sees ``datetime.now(UTC)`` and ``time.time()``."""
        source = "x = datetime.now(UTC)\nimport time\ny = time.time()\n"
        assert wall_clock_reads(source) == [1, 3]

    def test_only_the_clock_seams_read_the_wall_clock(self) -> None:
        """No product module but the two clock seams reads the time of day."""
        offenders = {
            str(module): reads
            for module in product_modules()
            if module not in SEAMS and (reads := wall_clock_reads((ROOT / module).read_text()))
        }
        assert offenders == {}
