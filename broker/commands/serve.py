"""``isa-broker serve --federation DIR [--listen HOST:PORT]``: serve the signed manifest.

Agents poll ``http://HOST:PORT/manifest`` (``[trust] manifest_url``) with ``If-None-Match``;
``/healthz`` reports the serial being served. SIGTERM or Ctrl-C stops the server cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.serve import ManifestFile, serve_manifest
from federation.errors import ConfigError

__all__ = ["DEFAULT_LISTEN", "parse_listen", "register"]

DEFAULT_LISTEN = "127.0.0.1:8440"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the `isa-broker` parser."""
    parser = sub.add_parser("serve", help="serve the signed manifest over HTTP (with ETag)")
    parser.add_argument("--federation", type=Path, required=True, help="federation directory")
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--issue-renewals",
        action="store_true",
        help="issue certificate renewal requests at once (needs ca/root.key: dev federations; "
        "otherwise schedule isa-broker agency renew --pending where the CA key is kept)",
    )
    parser.set_defaults(func=_run)


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
    try:
        asyncio.run(_serve(layout, host, port, served.serial, issue=args.issue_renewals))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return 0


async def _serve(
    layout: FederationLayout, host: str, port: int, serial: int, *, issue: bool = False
) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(
        serve_manifest(layout, host, port, stop=stop, ready=ready, issue_renewals=issue)
    )
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        print(f"serving manifest serial {serial} at http://{host}:{port}/manifest", flush=True)
    else:
        waiter.cancel()
    await task
    print("stopped", flush=True)
