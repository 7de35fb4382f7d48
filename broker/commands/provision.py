"""`isa-broker provision --config broker.toml [--dry-run]`: make RabbitMQ match the config.

Prints the plan, one line per change (``+`` create, ``~`` update, ``-`` delete, ``x`` close a
connection, ``!`` a conflict left for the operator), or ``no changes``; then applies it unless
``--dry-run``. Exit 0 when the broker matches the config afterwards (or would, for a dry run),
1 on any error (unreachable or refusing management API, bad config) or unresolved conflict.

The broker's version decides one more thing (``broker/provision.py`` rule 7): on a RabbitMQ that
checks nothing on a passive ``queue.declare`` a last ``note:`` line says that any agency can
read any queue's message and consumer counts; on 4.2.6 and 4.3.0, which want ``configure`` for
it, no agent could consume its inbox, so nothing is changed and the exit code is 1.

The config file and ``ISA_BROKER_ADMIN_PASSWORD`` are read here, at the edge, and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from broker.config import ADMIN_PASSWORD_ENV, BrokerConfig, load_broker_config, with_admin_password
from broker.provision import (
    Change,
    PassiveDeclareCheck,
    apply,
    passive_declare_check,
    plan,
    read_state,
)
from broker.rabbitmq import ManagementClient
from federation.errors import ConfigError

__all__ = ["provision_command", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``provision`` to the `isa-broker` parser."""
    parser = sub.add_parser(
        "provision",
        help="create the RabbitMQ vhost, exchanges, queues, users and permissions",
        description="Idempotently provision RabbitMQ through its management API. "
        f"The admin password may come from {ADMIN_PASSWORD_ENV}.",
    )
    parser.add_argument("--config", type=Path, required=True, help="broker.toml")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan without changing anything"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return provision_command(args.config, dry_run=args.dry_run, environ=os.environ)


def provision_command(
    config_path: Path, *, dry_run: bool, environ: Mapping[str, str], out: TextIO | None = None
) -> int:
    """Load the config, plan, print, apply; returns the exit code (errors raise, see cli)."""
    config = with_admin_password(load_broker_config(config_path), environ)
    if not config.rabbitmq.admin_password:
        raise ConfigError(
            f"{config_path}: no admin password: set [rabbitmq].admin_password "
            f"or {ADMIN_PASSWORD_ENV}"
        )
    return asyncio.run(_provision(config, dry_run, out or sys.stdout))


async def _provision(config: BrokerConfig, dry_run: bool, out: TextIO) -> int:
    r = config.rabbitmq
    async with ManagementClient(r.management_url, r.admin_user, r.admin_password) as client:
        state = await read_state(client, config)
        check = passive_declare_check(state.rabbitmq_version)
        if check is PassiveDeclareCheck.CONFIGURE:
            print(f"error: RabbitMQ {state.rabbitmq_version} wants the configure permission for "
                  "a passive queue.declare, which agents must not have: no agent could consume "
                  "its inbox. Use RabbitMQ 4.2.7+ or 4.3.1+. Nothing was changed.", file=out)
            return 1
        changes = plan(config, state)
        target = f"{client.display_url} vhost {r.vhost}"
        code = await _print_and_apply(client, changes, target, dry_run, out)
    if check is PassiveDeclareCheck.NOTHING:
        print(f"note: RabbitMQ {state.rabbitmq_version or '(version unknown)'} checks no "
              "permission on a passive queue.declare: any agency can read the message and "
              "consumer counts of any queue (never its messages); 4.2.7+ / 4.3.1+ refuse it",
              file=out)  # fmt: skip
    return code


async def _print_and_apply(
    client: ManagementClient, changes: list[Change], target: str, dry_run: bool, out: TextIO
) -> int:
    if not changes:
        print(f"{target}: no changes", file=out)
        return 0
    print(f"{target}: {len(changes)} change(s){' (dry run)' if dry_run else ''}", file=out)
    for change in changes:
        print(change.line(), file=out)
    conflicts = sum(1 for c in changes if c.action == "conflict")
    if not dry_run:
        applied = await apply(client, changes)
        print(f"applied {applied} change(s)", file=out)
    if conflicts:
        print(f"error: {conflicts} conflict(s) need an operator (lines marked !)", file=out)
        return 1
    return 0
