"""``isa-broker keys report --federation DIR [--json] [--rotation-days N]``: the key review.

Exit status: 0 when no agency is overdue, 1 when any is (so it can run as a scheduled check);
project errors (not a federation directory, a manifest that does not verify) print a diagnosis.
The clock is read here, at the edge.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.keys_report import build_report, render_text

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys report`` to the `isa-broker` parser."""
    parser = sub.add_parser("keys", help="review the agencies' keys and rotations")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report", help="key ages, rotation history, overdue rotations, revocations"
    )
    report.add_argument("--federation", type=Path, required=True, help="federation directory")
    report.add_argument("--json", action="store_true", help="JSON (docs/keys-report.schema.json)")
    report.add_argument(
        "--rotation-days", type=_positive, default=30.0, help="rotation period (default 30)"
    )
    report.set_defaults(func=_report)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < value <= 3660:
        raise argparse.ArgumentTypeError("the rotation period must be 0 < days <= 3660")
    return value


def _report(args: argparse.Namespace) -> int:
    report = build_report(
        FederationLayout(args.federation),
        args.clock(),
        rotation_period=timedelta(days=args.rotation_days),
    )
    print(report.model_dump_json(indent=2) if args.json else render_text(report))
    return 1 if report.overdue else 0
