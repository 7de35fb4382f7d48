"""Dev federations on a throw-away vhost of a real RabbitMQ, for the demo, benchmarks and tests.

Rules:
1. A federation is built by :func:`broker.devfed.create_dev_federation` and provisioned by
   :func:`broker.commands.provision.provision_command`: exactly what ``isa-broker dev-federation``
   and ``isa-broker provision`` do, nothing the tools invent.
2. RabbitMQ users are broker-wide: each federation's broker users carry a prefix of its own
   (by default ``<vhost>.``, as ``isa-broker dev-federation`` gives), so building one never
   changes the password of anyone else's user; :func:`remove` deletes the federation's vhost and
   its own users, nothing else.
3. A failed provisioning is a :class:`ProvisionFailed` carrying the command's report.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from broker.commands.provision import provision_command
from broker.devfed import DevFederation, create_dev_federation
from devtools.management import Broker

__all__ = ["POLICIES", "ProvisionFailed", "build", "create", "provision", "provisioned",
           "remove", "vhost_of"]  # fmt: skip

POLICIES = Path(__file__).resolve().parents[1] / "policies"


class ProvisionFailed(RuntimeError):
    """``isa-broker provision`` failed; the message is its report."""


def create(
    root: Path, broker: Broker, *, vhost: str, policies: Path = POLICIES,
    agencies: list[str] | None = None, user_prefix: str | None = None,
    now: datetime | None = None,
) -> DevFederation:
    """A dev federation in ``root`` for ``vhost`` of ``broker`` (not provisioned yet), built at
    ``now`` (default: the wall clock; a test that judges it with a fixed clock passes that)."""
    return create_dev_federation(
        root, policies=policies, now=now or datetime.now(UTC), agencies=agencies,
        amqp_url=broker.base_amqp, management_url=broker.management_url, vhost=vhost,
        admin_user=broker.admin_user, admin_password=broker.admin_password,
        user_prefix=user_prefix,
    )  # fmt: skip


def provision(fed: DevFederation) -> str:
    """Provision the federation's vhost, exchange, queues, users and permissions; the report."""
    out = io.StringIO()
    if provision_command(fed.layout.broker_toml, dry_run=False, environ={}, out=out) != 0:
        raise ProvisionFailed(f"provisioning failed:\n{out.getvalue()}")
    return out.getvalue()


def build(
    root: Path, broker: Broker, *, vhost: str, policies: Path = POLICIES,
    agencies: list[str] | None = None, user_prefix: str | None = None,
) -> DevFederation:
    """:func:`create` and :func:`provision`."""
    fed = create(root, broker, vhost=vhost, policies=policies, agencies=agencies,
                 user_prefix=user_prefix)  # fmt: skip
    provision(fed)
    return fed


@contextmanager
def provisioned(
    root: Path, broker: Broker, *, vhost: str, policies: Path = POLICIES,
    agencies: list[str] | None = None, user_prefix: str | None = None,
    now: datetime | None = None,
) -> Iterator[DevFederation]:
    """:func:`build` on the way in, :func:`remove` on the way out (whatever happened)."""
    fed = create(root, broker, vhost=vhost, policies=policies, agencies=agencies,
                 user_prefix=user_prefix, now=now)  # fmt: skip
    try:
        provision(fed)
        yield fed
    finally:
        remove(fed, broker)


def vhost_of(fed: DevFederation) -> str:
    """The vhost the federation's ``broker.toml`` names."""
    text = fed.layout.broker_toml.read_text()
    return text.split('vhost = "', 1)[1].split('"', 1)[0]


def remove(fed: DevFederation, broker: Broker) -> None:
    """Delete the federation's vhost and its own broker users (rule 2)."""
    broker.discard_vhost(vhost_of(fed))
    for agency in fed.agencies:
        broker.discard_user(agency.broker_user)
