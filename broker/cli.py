"""``isa-broker``: the network operator's command line.

Each command group lives in its own module under :mod:`broker.commands` and exposes
``register(subparsers)``; the handler it sets as ``func`` takes the parsed arguments and returns
an exit code. Errors from this project print their diagnosis, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

from broker.clock import Clock, utcnow
from federation.errors import IsaRelayError

__all__ = ["installed_version", "main"]


def installed_version() -> str:
    """The installed distribution's version (``isa-relay``), or "unknown" from a bare checkout."""
    try:
        return importlib.metadata.version("isa-relay")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

COMMAND_MODULES = (
    "broker.commands.policy",
    "broker.commands.schemas",
    "broker.commands.synth",
    "broker.commands.dev_federation",
    "broker.commands.provision",
    "broker.commands.manifest",
    "broker.commands.agency",
    "broker.commands.revoke",
    "broker.commands.keys",
    "broker.commands.serve",
    "broker.commands.ca",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isa-broker", description="ISA Relay network operator tools"
    )
    parser.add_argument("--version", action="version", version=f"isa-broker {installed_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock = utcnow) -> int:
    """Run one command; ``clock`` is the only source of the time of day (``args.clock``)."""
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
