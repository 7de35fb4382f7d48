"""``isa-broker manifest build|resign|show``: publish the next signed manifest, or show one.

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
from federation.manifest import reload_manifest

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
    serial, isas = publish_manifest(layout, args.clock(), validity_hours=args.validity_hours)
    hours = load_state(layout).manifest_validity_hours
    print(f"manifest serial {serial} written ({len(isas)} ISAs), valid for {hours:g} hours")
    return 0


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
    for isa in doc.isas:
        print(f"  isa {isa.id} v{isa.version} {isa.status} parties: {', '.join(isa.parties)}")
    for rev in doc.revocations:
        print(f"  revoked {rev.kind} {rev.ref} ({rev.agency}) at {rev.revoked_at}")
    return 0
