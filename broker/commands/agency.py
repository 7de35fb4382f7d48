"""``isa-broker agency add|announce|revoke``: onboard an agency, publish its keys, revoke it.

The real-deployment flow (the agency keeps every private key on its own premises)::

    isa-broker agency add --federation DIR --id ID --name NAME --public-key=B64URL

(Write ``--public-key=KEY`` with ``=``: a base64url key may begin with ``-``, which argparse
would otherwise take for an option.)
        # or --certificate-request FILE (PKCS#10, CN = ID: also proves the agency holds the key)
        # prints the agency's broker password ONCE (or, with --password-file FILE, writes it
        # there, mode 0600, and prints nothing secret); send it to the agency's IT
    isa-broker agency announce --federation DIR ANNOUNCEMENT.json
        # the agency's signed X25519 key announcement, verified against its certificate
    isa-broker agency revoke --federation DIR --id ID --reason TEXT
    isa-broker provision --config DIR/broker.toml   # deletes the revoked agency's broker user

``agency add --generate`` (dev federations only) also plays the agency's part: it generates the
agency's keys, announcement, ``agent.toml`` and API token under ``DIR/agencies/ID/``.
Each command publishes the next manifest serial. The clock is read here, at the edge.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nacl.signing import VerifyKey

from broker.agency import (
    AddedAgency,
    add_agency,
    announce_key,
    generate_agency,
    parse_public_key,
    public_key_from_csr,
    revoke_agency,
)
from broker.commands import renewal
from broker.fedstate import FederationLayout, write_private
from federation.errors import ConfigError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agency add|announce|revoke`` to the `isa-broker` parser."""
    parser = sub.add_parser("agency", help="add, announce keys of, or revoke an agency")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="certify a new agency's signing key and publish it")
    _federation(add)
    add.add_argument("--id", required=True, help="agency id, e.g. 'health-board'")
    add.add_argument("--name", required=True, help="the agency's display name")
    key = add.add_argument_group(
        "the agency's signing key (exactly one; these options exclude each other)"
    ).add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--public-key",
        help="the agency's Ed25519 signing public key (base64url); write --public-key=KEY, "
        "since a key may begin with '-'",
    )
    key.add_argument(
        "--certificate-request",
        type=Path,
        metavar="FILE",
        help="a PKCS#10 request (PEM/DER) for the agency's Ed25519 key, CN = the agency id",
    )
    key.add_argument(
        "--generate", action="store_true", help="DEV ONLY: generate the agency's keys and config"
    )
    add.add_argument(
        "--broker-user",
        help="RabbitMQ user name; must start with the federation's user prefix "
        "(default: the prefix in broker.toml + the agency id)",
    )
    add.add_argument(
        "--password-file", type=Path, metavar="FILE",
        help="write the broker password to FILE (mode 0600, never overwritten) instead of "
        "printing it: the file to hand to the agency",
    )  # fmt: skip
    add.set_defaults(func=_add)
    announce = actions.add_parser("announce", help="publish an agency's signed key announcement")
    _federation(announce)
    announce.add_argument("file", type=Path, help="the announcement JSON the agency sent")
    announce.set_defaults(func=_announce)
    revoke = actions.add_parser("revoke", help="revoke an agency (manifest and broker user)")
    _federation(revoke)
    revoke.add_argument("--id", required=True, help="agency id")
    revoke.add_argument("--reason", required=True, help="why (published in the manifest)")
    revoke.set_defaults(func=_revoke)
    renewal.register_agency(actions)  # renew, reissue


def _federation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--federation", type=Path, required=True, help="federation directory")


def _add(args: argparse.Namespace) -> int:
    layout, now = FederationLayout(args.federation), args.clock()
    if args.generate:
        if args.password_file:
            raise ConfigError("--password-file cannot be used with --generate")
        made = generate_agency(
            layout, agency_id=args.id, name=args.name, now=now, broker_user=args.broker_user
        )
        added = made.added
        print(f"generated dev agency {added.id}: config {made.config}, API {made.api_url}")
        print(f"  API token in {made.config.parent / 'api-token'}")
    else:
        _refuse_existing(args.password_file)
        added = add_agency(
            layout,
            agency_id=args.id,
            name=args.name,
            public_key=_public_key(args),
            now=now,
            broker_user=args.broker_user,
        )
        print(f"agency {added.id} certified: {added.certificate}")
        _hand_over_password(added, args.password_file)
        print("  next: the agency sends its key announcement (isa-broker agency announce)")
    print(f"manifest serial {added.serial} written; run isa-broker provision to add its user")
    return 0


def _refuse_existing(path: Path | None) -> None:
    """Checked before the agency is added: a password must never be lost to a name clash."""
    if path is not None and path.exists():
        raise ConfigError(f"{path} already exists: name a new --password-file")


def _hand_over_password(added: AddedAgency, path: Path | None) -> None:
    if path is None:
        print(f"  broker user {added.broker_user}, password (shown once, store it now):")
        print(f"  {added.broker_password}")
        return
    write_private(path, added.broker_password.encode("utf-8") + b"\n")
    print(f"  broker user {added.broker_user}, password in {path} (mode 0600): send it to the "
          "agency, then delete it")  # fmt: skip


def _public_key(args: argparse.Namespace) -> VerifyKey:
    if args.public_key is not None:
        return parse_public_key(args.public_key)
    return public_key_from_csr(_read(args.certificate_request), args.id)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None


def _announce(args: argparse.Namespace) -> int:
    data = _read(args.file)
    note, serial = announce_key(FederationLayout(args.federation), data, args.clock())
    print(f"key {note.kid} of {note.agency} ({note.not_before} .. {note.not_after}) accepted")
    print(f"manifest serial {serial} written")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    serial = revoke_agency(layout, agency_id=args.id, reason=args.reason, now=args.clock())
    print(f"agency {args.id} revoked; manifest serial {serial} written")
    print(f"next: isa-broker provision --config {layout.broker_toml} (deletes its broker user)")
    return 0
