"""``isa-broker dev-federation``: a complete local federation (SYNTHETIC) in one directory."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from broker.devfed import create_dev_federation

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dev-federation",
        help="build a local federation: CA, agencies, keys, configs, signed manifest",
        description="Build a complete local federation for development (synthetic data only).",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to create")
    parser.add_argument("--policies", type=Path, default=Path("policies"), help="ISA directory")
    parser.add_argument(
        "--agencies", nargs="+", metavar="ID", help="agency ids (default: every ISA party)"
    )
    parser.add_argument("--amqp-url", default="amqp://127.0.0.1:5672/")
    parser.add_argument("--management-url", default="http://127.0.0.1:15672")
    parser.add_argument("--vhost", default="isa-relay")
    parser.add_argument(
        "--user-prefix",
        metavar="PREFIX",
        help="RabbitMQ users are PREFIX + agency id (default: '<vhost>.': RabbitMQ user names "
        "are broker-wide and a vhost holds one federation, so federations sharing a broker never "
        "share a user); '' names users by the bare agency id (a broker of its own only)",
    )
    parser.add_argument("--admin-user", default="guest", help="RabbitMQ admin (dev broker)")
    parser.add_argument(
        "--admin-password", default="guest", help="written to broker.toml (dev only)"
    )
    parser.add_argument(
        "--manifest-days",
        type=float,
        default=7.0,
        help="manifest validity in days, 1/24 to 90 (default 7)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing federation")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    federation = create_dev_federation(
        args.out,
        policies=args.policies,
        now=args.clock(),
        agencies=args.agencies,
        amqp_url=args.amqp_url,
        management_url=args.management_url,
        vhost=args.vhost,
        admin_user=args.admin_user,
        admin_password=args.admin_password,
        manifest_validity=timedelta(days=args.manifest_days),
        force=args.force,
        user_prefix=args.user_prefix,
    )
    print(f"federation in {federation.layout.root} (manifest serial {federation.serial})")
    print(f"ISAs: {', '.join(federation.isas)}")
    for agency in federation.agencies:
        print(f"  {agency.id:<20} {agency.api_url:<24} {agency.config}")
    print(f"next: isa-broker provision --config {federation.layout.broker_toml}")
    return 0
