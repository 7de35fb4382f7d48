"""``isa-agent run --config FILE``: run the agent until SIGTERM or SIGINT.

Exit status: 0 stopped by a signal (after draining); 1 an error, printed as one line (e.g. the
API address already in use); 77 (``EXIT_REVOKED``) the federation manifest lists this agency as
revoked: the agent logged why and stopped, and restarting it will not help.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

from agent.config import Settings, load_settings
from agent.logs import configure_logging
from agent.runtime import EXIT_REVOKED, AgencyRevoked, run_agent

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent (API, transport, relay)")
    parser.add_argument("--config", type=Path, required=True, help="agent.toml")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text lines, or one JSON object per line (default: [log] format, else text)",
    )
    parser.add_argument(
        "--event-loop",
        default="uvloop",
        choices=["uvloop", "asyncio"],
        help="uvloop (default; libuv: about a third less CPU per referral, see benchmarks/"
        "README.md) or the standard library's loop",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, os.environ)
    configure_logging(args.log_level, args.log_format or settings.log.format)
    try:
        with asyncio.Runner(loop_factory=_loop_factory(args.event_loop)) as runner:
            runner.run(_main(settings))
    except AgencyRevoked:
        return EXIT_REVOKED  # the runtime logged the one line saying why
    return 0


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when asked for (the default), else the standard library's."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run_agent(settings, stop=stop)
