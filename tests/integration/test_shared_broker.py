"""Two federations on one real RabbitMQ, each built with default options (issue 16 point 3).

RabbitMQ user names are broker-wide. Federations that named users by the bare agency id changed
each other's ``assist`` password on every provision, and a revocation in one deleted the other's
user. Built with defaults, each federation's users now carry ``<vhost>.``, so neither touches
the other's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiormq
import pytest

from broker.agency import revoke_agency
from broker.devfed import DevFederation
from devtools import federation as tools_federation
from tests.support.rabbitmq import RabbitServer

pytestmark = pytest.mark.rabbitmq

AGENCIES = ["police-scotland", "assist"]


@pytest.fixture
def two_federations(
    rabbit_server: RabbitServer, tmp_path: Path
) -> Iterator[tuple[DevFederation, DevFederation]]:
    """Federations A and B: same agencies, default user naming, a vhost each; not provisioned.

    They are refused (before the broker is touched) if their user names overlap, so a broken
    default can never change or delete anyone else's user on the shared broker.
    """
    tag = uuid.uuid4().hex[:8]
    made = tuple(
        tools_federation.create(
            tmp_path / side, rabbit_server, vhost=f"share-{side}-{tag}", agencies=AGENCIES
        )
        for side in ("a", "b")
    )
    a, b = made
    try:
        overlap = {x.broker_user for x in a.agencies} & {x.broker_user for x in b.agencies}
        assert not overlap, f"both federations name broker users {sorted(overlap)}"
        yield a, b
    finally:
        if not overlap:
            for fed in made:
                tools_federation.remove(fed, rabbit_server)


def logs_in(server: RabbitServer, fed: DevFederation, agency: str) -> bool:
    """Whether ``agency`` of ``fed`` can open an AMQP connection with its own credentials."""
    return asyncio.run(_logs_in(server, fed, agency))


async def _logs_in(server: RabbitServer, fed: DevFederation, agency: str) -> bool:
    credentials = fed.agency(agency)
    url = server.amqp_url_for(
        tools_federation.vhost_of(fed), credentials.broker_user, credentials.broker_password
    )
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except (aiormq.exceptions.ProbableAuthenticationError, ConnectionError):
        return False
    await connection.close()
    return True


class TestTwoFederationsOnOneBroker:
    def test_provisioning_one_changes_the_others_passwords_regression(
        self, rabbit_server: RabbitServer, two_federations: tuple[DevFederation, DevFederation]
    ) -> None:
        """After both provisions every agency of both federations logs in with its password."""
        a, b = two_federations
        tools_federation.provision(a)
        tools_federation.provision(b)
        results = {(fed.layout.root.name, x): logs_in(rabbit_server, fed, x)
                   for fed in (a, b) for x in AGENCIES}  # fmt: skip
        assert results == {(side, x): True for side in ("a", "b") for x in AGENCIES}

    def test_revoking_assist_in_one_deletes_the_others_assist_regression(
        self, rabbit_server: RabbitServer, two_federations: tuple[DevFederation, DevFederation]
    ) -> None:
        """A's revocation of ``assist`` deletes A's user only; B's ``assist`` still logs in."""
        a, b = two_federations
        tools_federation.provision(a)
        tools_federation.provision(b)
        revoke_agency(a.layout, agency_id="assist", reason="synthetic test", now=datetime.now(UTC))
        tools_federation.provision(a)
        assert logs_in(rabbit_server, a, "assist") is False
        assert logs_in(rabbit_server, b, "assist") is True
        assert logs_in(rabbit_server, a, "police-scotland") is True
