"""``isa-broker agency renew|reissue`` and ``isa-broker manifest renew-signer``: certificates
renewed before they expire (``broker.renewals``).

Scheduled jobs (README, "Certificates renew themselves"), on the machine that holds the CA key::

    isa-broker agency renew --federation DIR --pending          # issue agencies' requests
    isa-broker manifest renew-signer --federation DIR --within-days 60

Recovery after an agency's certificate has expired (no request can be signed any more)::

    isa-broker agency reissue --federation DIR --id ID --reason TEXT

These subcommands are registered by ``broker.commands.agency`` and ``broker.commands.manifest``.
The clock is read here, at the edge.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from broker.fedstate import FederationLayout
from broker.renewals import issue_pending, reissue, renew_signer
from federation.canonical import format_time
from federation.errors import ConfigError

__all__ = ["register_agency", "register_manifest"]


def register_agency(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``renew`` and ``reissue`` to ``isa-broker agency``."""
    renew = actions.add_parser("renew", help="issue the agencies' pending renewal requests")
    renew.add_argument("--federation", type=Path, required=True, help="federation directory")
    renew.add_argument(
        "--pending", action="store_true", required=True,
        help="process every request isa-broker serve has accepted (a scheduled job)",
    )  # fmt: skip
    renew.set_defaults(func=_renew)
    again = actions.add_parser("reissue", help="re-certify an agency's key (after expiry)")
    again.add_argument("--federation", type=Path, required=True, help="federation directory")
    again.add_argument("--id", required=True, help="agency id")
    again.add_argument("--reason", required=True, help="the operator's decision (audited)")
    again.set_defaults(func=_reissue)


def register_manifest(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``renew-signer`` to ``isa-broker manifest``."""
    signer = actions.add_parser("renew-signer", help="renew the manifest signer's certificate")
    signer.add_argument("--federation", type=Path, required=True, help="federation directory")
    signer.add_argument(
        "--within-days", type=float, metavar="DAYS",
        help="only when it ends within DAYS (a scheduled job); default: renew now",
    )  # fmt: skip
    signer.set_defaults(func=_renew_signer)


def _renew(args: argparse.Namespace) -> int:
    done = issue_pending(FederationLayout(args.federation), args.clock())
    for renewed in done:
        end = format_time(renewed.not_after)
        print(f"agency {renewed.agency}: certificate renewed until {end}")
    if done:
        print(f"manifest serial {done[0].serial} written")
    else:
        print("no renewal issued")
    return 0


def _reissue(args: argparse.Namespace) -> int:
    layout = FederationLayout(args.federation)
    done = reissue(layout, agency=args.id, reason=args.reason, now=args.clock())
    print(f"agency {done.agency}: certificate reissued until {format_time(done.not_after)}")
    print(f"manifest serial {done.serial} written")
    return 0


def _renew_signer(args: argparse.Namespace) -> int:
    within = None
    if args.within_days is not None:
        if not 0 <= args.within_days <= 3650:  # NaN fails too
            raise ConfigError("--within-days: 0 to 3650")
        within = timedelta(days=args.within_days)
    done = renew_signer(FederationLayout(args.federation), args.clock(), within=within)
    if done is None:
        print("the manifest signer's certificate is not due for renewal")
        return 0
    print(f"manifest signer certificate renewed until {format_time(done.not_after)}")
    print(f"manifest serial {done.serial} written")
    return 0
