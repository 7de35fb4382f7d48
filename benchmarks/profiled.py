"""``isa-agent`` under cProfile, for ``benchmarks.pipeline --profile DIR``.

    python -m benchmarks.profiled OUT.pstats run --config agent.toml ...
    python -m benchmarks.profiled --top OUT.pstats [N]

Runs ``agent.cli.main`` with the arguments after ``OUT.pstats`` and writes, when the agent
stops, the profile of its main thread: the event loop (HTTP, policy, crypto, aio-pika), not the
SQLite writer threads. Times are the thread's CPU seconds (``time.thread_time``): on a busy
two-core machine, wall time would charge each preemption to whatever function was running.
cProfile's own cost per call inflates functions called very often (``isinstance``, the event
loop's handles), so read it for where the time goes, not for absolute figures. ``--top``
prints the N functions with the most own time, then with the most cumulative time.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

__all__ = ["main", "top"]


def top(path: str, limit: int = 30) -> str:
    """The ``limit`` functions with the most own time, then with the most cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--top"]:
        print(top(argv[1], int(argv[2]) if len(argv) > 2 else 30))
        return 0
    from agent.cli import main as agent_main

    profile = cProfile.Profile(time.thread_time)  # CPU time: preemption is not the code's
    try:
        code: int = profile.runcall(agent_main, argv[1:])
    finally:
        profile.dump_stats(argv[0])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
