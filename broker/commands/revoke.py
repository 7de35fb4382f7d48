"""``isa-broker key revoke`` and ``isa-broker certificate revoke``: one key, one certificate.

Usage::

    isa-broker key revoke --federation DIR --agency ID --kid KID --reason CODE [--note TEXT]
    isa-broker certificate revoke --federation DIR --agency ID --certificate FINGERPRINT|SERIAL
        --reason CODE [--note TEXT]

``CODE`` is an RFC 5280 reason (keyCompromise, superseded, cessationOfOperation, ...). Each
publishes the next manifest serial (``broker.revocation``); agents act on it at their next poll.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.revocation import revoke_certificate, revoke_key
from federation.manifest import REVOCATION_REASONS

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``key revoke`` and ``certificate revoke`` to the `isa-broker` parser."""
    key = sub.add_parser("key", help="revoke one encryption key of an agency")
    key_actions = key.add_subparsers(dest="action", metavar="ACTION", required=True)
    revoke = key_actions.add_parser("revoke", help="revoke one announced encryption key")
    _common(revoke)
    revoke.add_argument("--kid", required=True, help="the key's kid (32 hex)")
    revoke.set_defaults(func=_revoke_key)
    cert = sub.add_parser("certificate", help="revoke one agency certificate")
    cert_actions = cert.add_subparsers(dest="action", metavar="ACTION", required=True)
    revoke = cert_actions.add_parser("revoke", help="revoke an agency's signing certificate")
    _common(revoke)
    revoke.add_argument(
        "--certificate", required=True, help="its fingerprint (hex SHA-256) or serial number"
    )
    revoke.set_defaults(func=_revoke_certificate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--federation", type=Path, required=True, help="federation directory")
    parser.add_argument("--agency", required=True, help="agency id")
    parser.add_argument(
        "--reason", required=True, help=f"RFC 5280 reason: {', '.join(REVOCATION_REASONS)}"
    )
    parser.add_argument("--note", default="", help="a short note published with the reason")


def _revoke_key(args: argparse.Namespace) -> int:
    serial = revoke_key(
        FederationLayout(args.federation), agency_id=args.agency, kid=args.kid,
        reason=args.reason, note=args.note, now=args.clock(),
    )  # fmt: skip
    print(f"key {args.kid} of {args.agency} revoked ({args.reason}); manifest serial {serial}")
    return 0


def _revoke_certificate(args: argparse.Namespace) -> int:
    serial = revoke_certificate(
        FederationLayout(args.federation), agency_id=args.agency, certificate=args.certificate,
        reason=args.reason, note=args.note, now=args.clock(),
    )  # fmt: skip
    print(f"certificate {args.certificate} of {args.agency} revoked ({args.reason}); "
          f"manifest serial {serial}")  # fmt: skip
    return 0
