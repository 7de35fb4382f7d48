"""``isa-broker keys report --federation DIR [--json | --prometheus] [thresholds]``: the review
of keys, rotations and of everything in the federation that expires.

Exit status (``broker.keys_report.exit_status``), so it can run as a scheduled check:

- 0: nothing overdue, nothing expired, nothing within a threshold;
- 1: an agency's key rotation is overdue, or anything has expired (a certificate, including the
  root and the manifest signer; the manifest; an ISA's end) or is overdue (an ISA review);
- 2: something is critical: a certificate or ISA date within ``--critical-days`` (default 7), or
  the manifest within ``--manifest-hours`` (default 48: the re-signing job is not running);
- 3: a certificate or ISA date within ``--warn-days`` (default 30).

``--prometheus`` prints the same as gauges (text exposition) for a textfile collector. Project
errors (not a federation directory, a manifest that does not verify) print a diagnosis. The
clock is read here, at the edge.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.keys_report import build_report, exit_status, render_prometheus, render_text
from federation.deadlines import Thresholds
from federation.errors import ConfigError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys report`` to the `isa-broker` parser."""
    parser = sub.add_parser("keys", help="review the agencies' keys and rotations")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report", help="key ages, rotations, revocations, and everything that expires"
    )
    report.add_argument("--federation", type=Path, required=True, help="federation directory")
    form = report.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="JSON (docs/keys-report.schema.json)")
    form.add_argument(
        "--prometheus", action="store_true", help="gauges, for a textfile collector"
    )
    report.add_argument(
        "--rotation-days", type=_positive, default=30.0, help="rotation period (default 30)"
    )
    report.add_argument(
        "--warn-days", type=_positive, default=30.0, help="warn below this (default 30)"
    )
    report.add_argument(
        "--critical-days", type=_positive, default=7.0, help="critical below this (default 7)"
    )
    report.add_argument(
        "--manifest-hours", type=_positive, default=48.0,
        help="critical when the manifest has less than this left (default 48)",
    )  # fmt: skip
    report.set_defaults(func=_report)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 3660:
        raise argparse.ArgumentTypeError("must be 0 < value <= 3660")
    return value


def _report(args: argparse.Namespace) -> int:
    if args.critical_days > args.warn_days:
        raise ConfigError("--critical-days must not be more than --warn-days")
    thresholds = Thresholds(
        warn=timedelta(days=args.warn_days),
        critical=timedelta(days=args.critical_days),
        renewal=timedelta(hours=args.manifest_hours),
    )
    now = args.clock()
    report = build_report(
        FederationLayout(args.federation),
        now,
        rotation_period=timedelta(days=args.rotation_days),
        thresholds=thresholds,
    )
    if args.json:
        print(report.model_dump_json(indent=2))
    elif args.prometheus:
        print(render_prometheus(report, now), end="")
    else:
        print(render_text(report))
    return exit_status(report)
