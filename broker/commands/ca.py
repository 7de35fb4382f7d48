"""``isa-broker ca rotate-root --begin|--switch``: rotate the federation root with an overlap
(``broker.rootrotation``; the whole procedure is in the README, "Rotating the federation root").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.rootrotation import begin_root_rotation, next_root_paths, switch_root

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ca rotate-root`` to the `isa-broker` parser."""
    parser = sub.add_parser("ca", help="the federation root CA")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    rotate = actions.add_parser("rotate-root", help="rotate the root with an overlap")
    rotate.add_argument("--federation", type=Path, required=True, help="federation directory")
    step = rotate.add_mutually_exclusive_group(required=True)
    step.add_argument("--begin", action="store_true", help="make the next root (step 1)")
    step.add_argument(
        "--switch", action="store_true", help="move every certificate under it (step 3)"
    )
    rotate.add_argument(
        "--name", default="ISA Relay federation root", help="the next root's common name"
    )
    rotate.set_defaults(func=_rotate)


def _rotate(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    if args.begin:
        pin = begin_root_rotation(layout, args.clock(), name=args.name)
        print(f"next root written to {next_root_paths(layout)[0]}")
        print(f"  fingerprint {pin}")
        print("  next: every agency pins it as [trust] next_root_certificate / "
              "next_root_fingerprint, then: isa-broker ca rotate-root --switch")  # fmt: skip
        return 0
    serial = switch_root(layout, args.clock())
    print(f"the federation is under the new root; manifest serial {serial} written")
    print("  next: every agency makes it its root_certificate / root_fingerprint and removes "
          "the next_root_* pair (that ends the overlap)")  # fmt: skip
    return 0
