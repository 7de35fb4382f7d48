"""``isa-broker manifest build|resign|show``: publish the next signed manifest, or show one.

``manifest build`` also publishes the ISAs of ``DIR/policies`` (``broker.fedstate`` rule 6):
``--format 2`` carries their documents, ``--isa-switch-minutes`` and ``--isa-grace-days`` set
when a new version governs and how long the one it replaces is still accepted
(``broker.isa_history``); each option is kept in ``federation.toml`` for later builds. It prints
each ISA's version and what the manifest says of its others.

``manifest resign --before HOURS`` publishes the next serial only when the manifest has less than
HOURS left (``broker.resign``): what ``deploy/systemd/isa-broker-resign.timer`` runs daily for
operators who do not let ``isa-broker serve`` re-sign. Exit 0 whether or not it was due.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

from broker.commands import renewal
from broker.fedstate import FederationLayout, load_state, publish_manifest
from broker.keys_report import load_manifest
from broker.resign import resign_if_due
from federation import pki
from federation.canonical import format_time
from federation.errors import ConfigError
from federation.manifest import ManifestDocument, reload_manifest, unverified_document

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("manifest", help="build or show the signed federation manifest")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="sign and write the next manifest serial")
    build.add_argument("--federation", type=Path, required=True, help="federation directory")
    build.add_argument(
        "--validity-hours",
        type=float,
        metavar="HOURS",
        help="the manifest expires HOURS after it is issued (1 to 2160, i.e. 90 days); kept in "
        "federation.toml for later builds (default: the stored lifetime, 168 for a new one)",
    )
    build.add_argument(
        "--format", type=int, choices=(1, 2), dest="manifest_format",
        help="2: the manifest carries the ISA documents and agents apply a new version without a"
        " restart; 1: agents read policies_dir (for agents older than format 2). Kept in"
        " federation.toml (default: the stored format; 1 for an older directory)",
    )  # fmt: skip
    build.add_argument(
        "--isa-switch-minutes", type=float, metavar="MINUTES",
        help="a new ISA version governs this long after the first manifest that carries it, so"
        " every agent holds it first (0 to 10080; default: the stored value, 15)",
    )  # fmt: skip
    build.add_argument(
        "--isa-grace-days", type=float, metavar="DAYS",
        help="the replaced version is still accepted this long for messages sealed before the"
        " switch (5.04 to 90: at least the 120-hour message lifetime + 1 hour; default: the"
        " stored value, 7)",
    )  # fmt: skip
    build.set_defaults(func=_build)
    resign = actions.add_parser("resign", help="publish the next serial if expiry is near")
    resign.add_argument("--federation", type=Path, required=True, help="federation directory")
    resign.add_argument(
        "--before", type=_hours, default=72.0, metavar="HOURS",
        help="re-sign when less than this is left (default 72)",
    )
    resign.set_defaults(func=_resign)
    show = actions.add_parser("show", help="verify a manifest and print its contents")
    show.add_argument("--federation", type=Path, required=True, help="federation directory")
    show.add_argument("--json", action="store_true", help="print the manifest document as JSON")
    show.set_defaults(func=_show)
    renewal.register_manifest(actions)  # renew-signer


def _build(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    serial, isas = publish_manifest(
        layout, args.clock(), validity_hours=args.validity_hours,
        manifest_format=args.manifest_format, isa_switch_minutes=args.isa_switch_minutes,
        isa_grace_days=args.isa_grace_days,
    )  # fmt: skip
    state = load_state(layout)
    print(
        f"manifest serial {serial} written (format {state.manifest_format}, {len(isas)} ISAs),"
        f" valid for {state.manifest_validity_hours:g} hours"
    )
    for line in _isa_lines(unverified_document(layout.manifest.read_bytes())):
        print(f"  {line}")
    return 0


def _isa_lines(document: ManifestDocument) -> list[str]:
    """One line per ISA: its current version, then each earlier one still listed."""
    lines = []
    for entry in sorted(document.isas, key=lambda e: (e.id, e.superseded_at is None)):
        if entry.superseded_at is None:
            lines.append(f"isa {entry.id} v{entry.version} {entry.status}"
                         f" parties: {', '.join(entry.parties)}")  # fmt: skip
        else:
            lines.append(f"isa {entry.id} v{entry.version} superseded at {entry.superseded_at}:"
                         f" accepted until {entry.accept_until} for messages sealed before"
                         " then")  # fmt: skip
    return lines


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < value <= 8760:
        raise argparse.ArgumentTypeError("hours must be 0 < HOURS <= 8760")
    return value


def _resign(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    serial = resign_if_due(layout, args.clock(), timedelta(hours=args.before))
    held = load_manifest(layout)
    if serial is None:
        print(f"manifest serial {held.serial} not due (expires {format_time(held.expires_at)})")
    else:
        print(f"manifest re-signed: serial {serial}, expires {format_time(held.expires_at)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    try:
        root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
        data = layout.manifest.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename}: not found") from None
    manifest = reload_manifest(data, root_cert=root, pinned_fingerprint=pki.fingerprint(root))
    doc = manifest.document
    if args.json:
        print(json.dumps(doc.to_json(), indent=2, sort_keys=True))
        return 0
    print(f"serial {doc.serial}  issued {doc.issued_at}  expires {doc.expires_at}")
    print(f"  root fingerprint {pki.fingerprint(root)} (an agent pins it: root_fingerprint)")
    for agency in doc.agencies:
        state = f"REVOKED {agency.revoked_at}" if agency.revoked_at else "active"
        kids = ", ".join(a.kid[:12] for a in agency.announcements) or "none"
        print(f"  agency {agency.id:<20} {state:<10} keys: {kids}")
    print(f"  format {doc.v}" + (" (carries the ISA documents)" if doc.v >= 2 else ""))
    for line in _isa_lines(doc):
        print(f"  {line}")
    for rev in doc.revocations:
        print(f"  revoked {rev.kind} {rev.ref} ({rev.agency}) at {rev.revoked_at}")
    return 0
