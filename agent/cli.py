"""``isa-agent``: the agency's command line.

Each command group lives in its own module under :mod:`agent.commands` and exposes
``register(subparsers)``; handlers return an exit code. Errors print a diagnosis, never a
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

from agent.clock import Clock, utcnow
from agent.private_files import restrict_umask
from federation.errors import IsaRelayError

__all__ = ["installed_version", "main"]


def installed_version() -> str:
    """The installed distribution's version (``isa-relay``), or "unknown" from a bare checkout."""
    try:
        return importlib.metadata.version("isa-relay")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

COMMAND_MODULES = (
    "agent.commands.init",
    "agent.commands.run",
    "agent.commands.check",
    "agent.commands.keys",
    "agent.commands.audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isa-agent", description="ISA Relay agency agent")
    parser.add_argument("--version", action="version", version=f"isa-agent {installed_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock = utcnow) -> int:
    """Run one command; ``clock`` is the only source of the time of day (``args.clock``)."""
    restrict_umask()  # first: every file any command makes is private (agent/private_files.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
    except IsaRelayError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. piped into `head`: not an error worth a traceback
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
