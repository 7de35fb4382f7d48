"""``python -m devtools.soak [--days N] [--short] [--dir DIR]``: one soak run and its figures.

Exit status 0 when every accepted referral was delivered exactly once and nothing was refused
unprovoked, 1 otherwise (the problems are printed after the figures), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from devtools.soak.clock import ClockError
from devtools.soak.processes import SoakSetupError
from devtools.soak.run import Soak, SoakPlan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__)
    parser.add_argument("--days", type=float, default=800.0, help="simulated days (default 800)")
    parser.add_argument("--short", action="store_true", help="the short form of scripts/test")
    parser.add_argument("--step-hours", type=float, default=23.0, help="hours per step (<= 24)")
    parser.add_argument("--dir", type=Path, help="keep the run's files here (default: a temp dir)")
    args = parser.parse_args(argv)
    if not 0 < args.step_hours <= 24:
        parser.error("--step-hours must be more than 0 and at most 24")
    plan = SoakPlan.short() if args.short else SoakPlan.long(args.days)
    if not args.short:
        plan = SoakPlan(days=args.days, step_hours=args.step_hours)
    # SIGTERM unwinds like Ctrl-C: the agents and serve are stopped, the vhost and users removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    root = args.dir or Path(tempfile.mkdtemp(prefix="isa-soak-"))
    print(f"soak in {root}", flush=True)
    try:
        figures = Soak(root, plan, say=lambda line: print(line, flush=True)).run()
    except (SoakSetupError, ClockError) as exc:
        print(f"soak could not run: {exc}", file=sys.stderr)
        return 2
    print(figures.table())
    problems = figures.problems()
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
