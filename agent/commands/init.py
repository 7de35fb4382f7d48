"""``isa-agent init``: a new agency's keys, certificate request, first announcement, API tokens
and ``agent.toml``, made on its own premises (``agent.onboarding``; README, "Deploy an agent").

Rules:
1. The arguments are read here, at the edge, with the clock and ``ISA_AGENT_KEY_PASSPHRASE``
   (only with ``--passphrase-from-env``: the same variable the agent reads when it runs).
2. Each API token is printed once, on stdout, one line per client (``token NAME SCOPES TOKEN``);
   everything else goes around it in plain sentences. No private key is ever printed.
3. Errors (existing files, a fingerprint that does not match, an unusable PEM) are one line on
   stderr and exit 1, never a traceback (``agent.cli``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.onboarding import InitPlan, InitResult, init_agency, parse_client
from federation.errors import ConfigError

__all__ = ["register"]

PASSPHRASE_ENV = "ISA_AGENT_KEY_PASSPHRASE"  # noqa: S105 - a variable's name, no secret
DEFAULT_CLIENT = "case-system:send,receive"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``init`` to the `isa-agent` parser."""
    parser = sub.add_parser(
        "init", help="make a new agency's keys, certificate request, announcement and config",
        description="The agency's side of onboarding: see README, 'Deploy an agent'.",
    )  # fmt: skip
    parser.add_argument("--agency", required=True, help="the agency id the operator agreed")
    parser.add_argument("--dir", type=Path, required=True, help="where agent.toml and keys go")
    parser.add_argument("--root-certificate", type=Path, required=True, metavar="FILE",
                        help="the federation root certificate from the operator")  # fmt: skip
    parser.add_argument("--root-fingerprint", required=True, metavar="HEX",
                        help="its SHA-256, as the operator told you out of band")  # fmt: skip
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest-url", help="the operator's isa-broker serve URL /manifest")
    source.add_argument("--manifest-file", type=Path, help="or a manifest file kept up to date")
    parser.add_argument("--policies", type=Path, metavar="DIR",
                        help="the federation's ISA files (policies/*.yaml), only while its "
                        "manifest is format 1 (a format-2 manifest carries them)")  # fmt: skip
    parser.add_argument("--broker-url", action="append", required=True, metavar="AMQP_URL",
                        help="amqp(s)://HOST:PORT/VHOST; repeat for failover")  # fmt: skip
    parser.add_argument("--broker-user", help="RabbitMQ user (default: the agency id)")
    parser.add_argument("--client", action="append", metavar="NAME:SCOPES",
                        help=f"an API client and its scopes (send, receive, admin); repeatable; "
                        f"default {DEFAULT_CLIENT}")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, help="the agent's store (default DIR/data)")
    parser.add_argument("--listen", default="127.0.0.1:8441", help="the local API's HOST:PORT")
    parser.add_argument("--import-key", type=Path, metavar="PEM",
                        help="use this Ed25519 private key (PKCS#8, e.g. openssl genpkey "
                        "-algorithm ed25519) instead of generating one")  # fmt: skip
    parser.add_argument("--passphrase-from-env", action="store_true",
                        help=f"seal the private keys with the passphrase in {PASSPHRASE_ENV}")
    parser.add_argument("--force", action="store_true",
                        help="replace the keys, request and agent.toml of an earlier init")
    parser.set_defaults(func=_init)


def _plan(args: argparse.Namespace) -> InitPlan:
    clients = tuple(parse_client(c) for c in args.client or [DEFAULT_CLIENT])
    names = [name for name, _ in clients]
    if len(set(names)) != len(names):
        raise ConfigError("--client: each client needs a name of its own")
    passphrase = os.environ.get(PASSPHRASE_ENV) if args.passphrase_from_env else None
    if args.passphrase_from_env and not passphrase:
        raise ConfigError(f"--passphrase-from-env: {PASSPHRASE_ENV} is not set")
    return InitPlan(
        agency=args.agency, home=args.dir, root_certificate=args.root_certificate,
        root_fingerprint=args.root_fingerprint, broker_urls=tuple(args.broker_url),
        broker_user=args.broker_user or args.agency, policies_dir=args.policies,
        clients=clients, manifest_url=args.manifest_url, manifest_file=args.manifest_file,
        data_dir=args.data_dir, listen=args.listen, import_key=args.import_key,
        passphrase=passphrase, force=args.force,
    )  # fmt: skip


def _init(args: argparse.Namespace) -> int:
    plan = _plan(args)
    result = init_agency(plan, args.clock())
    _report(plan, result)
    return 0


def _report(plan: InitPlan, result: InitResult) -> None:
    print(f"agency {plan.agency} initialised in {plan.home}; config {result.config}")
    print("API tokens (shown once, stored nowhere: give each to its case system now):")
    for issued in result.tokens:
        print(f"token {issued.client} {','.join(issued.scopes)} {issued.token}")
    print("send these two files to the federation operator:")
    print(f"  certificate request:     {result.request}")
    print(f"  encryption key {result.kid}: {result.announcement}")
    print("the operator runs: isa-broker agency add --certificate-request, agency announce, "
          "provision; and sends back your broker password")  # fmt: skip
    print(f"then: ISA_AGENT_BROKER_PASSWORD=... isa-agent check --config {result.config}")
