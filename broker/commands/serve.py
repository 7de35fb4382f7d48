"""``isa-broker serve --federation DIR [--listen HOST:PORT] [--resign-before HOURS]``.

Agents poll ``http://HOST:PORT/manifest`` (``[trust] manifest_url``) with ``If-None-Match``;
``/healthz`` reports the serial being served. SIGTERM or Ctrl-C stops the server cleanly.
The server also re-signs the manifest (the next serial) once it has less than ``--resign-before``
hours left (default 72; 0 turns it off), checking every ``--resign-check-seconds`` (300): a
federation built with the documented commands keeps a valid manifest with no one acting. The
lead time must be shorter than the manifest's validity, or every check would re-sign.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta
from pathlib import Path

from broker.clock import Clock
from broker.fedstate import FederationLayout, load_state
from broker.serve import ManifestFile, Resigning, serve_manifest
from federation.errors import ConfigError

__all__ = ["DEFAULT_LISTEN", "DEFAULT_RESIGN_BEFORE_HOURS", "parse_listen", "register"]

DEFAULT_LISTEN = "127.0.0.1:8440"
DEFAULT_RESIGN_BEFORE_HOURS = 72.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the `isa-broker` parser."""
    parser = sub.add_parser("serve", help="serve the signed manifest over HTTP (with ETag)")
    parser.add_argument("--federation", type=Path, required=True, help="federation directory")
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--resign-before", type=_hours, default=DEFAULT_RESIGN_BEFORE_HOURS, metavar="HOURS",
        help="re-sign the manifest when less than this is left (default 72; 0 = never)",
    )
    parser.add_argument(
        "--resign-check-seconds", type=_seconds, default=300.0, metavar="SECONDS",
        help="how often to check whether a re-sign is due (default 300)",
    )
    parser.add_argument(
        "--issue-renewals",
        action="store_true",
        help="issue certificate renewal requests at once (needs ca/root.key: dev federations; "
        "otherwise schedule isa-broker agency renew --pending where the CA key is kept)",
    )
    parser.set_defaults(func=_run)


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 <= value <= 8760:
        raise argparse.ArgumentTypeError("hours must be 0 <= HOURS <= 8760")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= 86400:
        raise argparse.ArgumentTypeError("seconds must be 1 <= SECONDS <= 86400")
    return value


def resigning(layout: FederationLayout, hours: float, interval: float) -> Resigning | None:
    """The re-signing the server runs, or None (0 hours); ``ConfigError`` if the lead time is
    not shorter than the manifest's validity."""
    if hours == 0:
        return None
    validity = load_state(layout).manifest_validity_hours
    if hours >= validity:
        raise ConfigError(
            f"--resign-before {hours:g}: must be shorter than the manifest's validity"
            f" ({validity:g} hours, federation.toml manifest_validity_hours)"
        )
    return Resigning(before=timedelta(hours=hours), interval=interval)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ``ConfigError`` for anything else."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]"), int(port)


def _run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    layout = FederationLayout(args.federation)
    served = ManifestFile(layout).current()
    if served is None:
        raise ConfigError(f"{layout.manifest}: nothing to serve (run isa-broker manifest build)")
    plan = resigning(layout, args.resign_before, args.resign_check_seconds)
    try:
        asyncio.run(
            _serve(layout, host, port, served.serial, args.clock, plan, issue=args.issue_renewals)
        )
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return 0


async def _serve(
    layout: FederationLayout,
    host: str,
    port: int,
    serial: int,
    clock: Clock,
    plan: Resigning | None,
    *,
    issue: bool = False,
) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serving = serve_manifest(
        layout, host, port, stop=stop, ready=ready, clock=clock, resigning=plan,
        issue_renewals=issue,
    )  # fmt: skip
    task = asyncio.create_task(serving)
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        print(f"serving manifest serial {serial} at http://{host}:{port}/manifest", flush=True)
    else:
        waiter.cancel()
    await task
    print("stopped", flush=True)
