"""``isa-agent run --config FILE``: run the agent until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from agent.config import Settings, load_settings
from agent.runtime import run_agent

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent (API, transport, relay)")
    parser.add_argument("--config", type=Path, required=True, help="agent.toml")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    parser.add_argument(
        "--event-loop",
        default="uvloop",
        choices=["uvloop", "asyncio"],
        help="uvloop (default; libuv: about a third less CPU per referral, see benchmarks/"
        "README.md) or the standard library's loop",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config, os.environ)
    with asyncio.Runner(loop_factory=_loop_factory(args.event_loop)) as runner:
        runner.run(_main(settings))
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
