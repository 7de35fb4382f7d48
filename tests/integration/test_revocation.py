"""``isa-broker agency revoke`` end to end, on the real RabbitMQ with running agents.

The revoked agency plays the attacker who ignores its revocation: it still holds its signing key
and (until provisioning) its broker password, and publishes sealed envelopes exactly as its agent
would. Once an agent holds the manifest serial that revokes it, the envelope fails check 2
(``EnvelopeRejected("sender_revoked")``): nothing reaches the inbox, the message is dead-lettered
and the sender gets a signed rejection receipt naming the reason. After ``isa-broker provision``
its broker user is gone: it can no longer connect at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiohttp
import pytest

from agent.runtime import agent_store
from broker.agency import add_agency, revoke_agency
from broker.commands.provision import provision_command
from broker.devfed import DevFederation, create_dev_federation
from broker.fedstate import read_private
from federation import pki
from federation.envelope import peek_header, seal
from federation.isa import load_isa
from federation.keys import SigningKey
from federation.manifest import Manifest, reload_manifest
from federation.pipeline import prepare
from federation.receipts import Receipt, verify_receipt
from federation.synth import generate_referral
from federation.topology import EXCHANGE, dead_letter_queue, inbox_queue
from tests.support.federation import POLICIES, AgentHandle, agent_settings
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

REVOKED = "assist"
POLL_SECONDS = 0.2


# --- a federation of its own (helpers shared with test_manifest_serve) -------------------------


@dataclasses.dataclass(frozen=True)
class LiveFederation:
    """A provisioned dev federation whose broker users are unique to this test.

    RabbitMQ users are global, not per vhost: tests running at the same time that provision
    users named after the agency ids would change each other's passwords. Here every broker user
    is ``<vhost>.<agency id>``, the dev federation's default naming.
    """

    dev: DevFederation
    server: RabbitServer
    vhost: str
    users: dict[str, str]

    @property
    def layout(self) -> Any:
        return self.dev.layout

    def amqp_url(self, agency: str | None = None) -> str:
        """Log in as ``agency`` with its provisioned password, or as the admin when None."""
        if agency is None:
            return self.server.amqp_url_for(self.vhost)
        password = self.dev.agency(agency).broker_password
        return self.server.amqp_url_for(self.vhost, self.users[agency], password)


def build_live_federation(root: Path, server: RabbitServer) -> LiveFederation:
    """Every agency of the shipped ISAs on a fresh vhost with unique users, provisioned."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"test-h-{tag}"
    dev = create_dev_federation(
        root, policies=POLICIES, now=datetime.now(UTC), amqp_url=f"amqp://{server.host}:{server.port}/",
        management_url=server.management_url, vhost=vhost, admin_user=server.admin_user,
        admin_password=server.admin_password,
    )  # fmt: skip
    users = {a.id: a.broker_user for a in dev.agencies}  # <vhost>.<agency>: the default
    out = io.StringIO()
    assert provision_command(dev.layout.broker_toml, dry_run=False, environ={}, out=out) == 0, (
        out.getvalue()
    )
    return LiveFederation(dev, server, vhost, users)


def remove_live_federation(fed: LiveFederation) -> None:
    fed.server.discard_vhost(fed.vhost)
    for user in fed.users.values():
        fed.server.discard_user(user)


@pytest.fixture
def federation(tmp_path: Path, rabbit_server: RabbitServer) -> Iterator[LiveFederation]:
    """A whole provisioned federation of this test's own (vhost and users removed after)."""
    fed = build_live_federation(tmp_path / "federation", rabbit_server)
    try:
        yield fed
    finally:
        remove_live_federation(fed)


def federation_manifest(fed: LiveFederation) -> Manifest:
    """The federation's current manifest, verified against its root."""
    root = pki.certificate_from_bytes(fed.layout.root_cert.read_bytes())
    data = fed.layout.manifest.read_bytes()
    return reload_manifest(data, root_cert=root, pinned_fingerprint=pki.fingerprint(root))


def polling_handle(
    fed: LiveFederation, agency: str, session: aiohttp.ClientSession, **trust: Any
) -> AgentHandle:
    """An in-process agent whose manifest poll runs every ``POLL_SECONDS`` (or as ``trust``)."""
    settings = agent_settings(fed.dev, agency)
    trust = {"manifest_poll_seconds": POLL_SECONDS} | trust
    settings = settings.model_copy(update={"trust": settings.trust.model_copy(update=trust)})
    return AgentHandle(settings, fed.dev.agency(agency).api_token, session)


@contextlib.asynccontextmanager
async def polling_agents(
    fed: LiveFederation, *agencies: str, **trust: Any
) -> AsyncIterator[dict[str, AgentHandle]]:
    """Start the named agents with a short manifest poll; stop them all on the way out."""
    async with aiohttp.ClientSession() as session:
        handles = {a: polling_handle(fed, a, session, **trust) for a in agencies}
        try:
            for handle in handles.values():
                await handle.start()
            yield handles
        finally:
            for handle in handles.values():
                await handle.shutdown()


async def health(agent: AgentHandle) -> dict[str, Any]:
    status, body = await agent.get("/healthz")
    assert status in (200, 503), body
    assert isinstance(body, dict)
    return body


async def wait_for_serial(agent: AgentHandle, serial: int, within: float = 20) -> None:
    """Poll the agent's /healthz until it reports manifest ``serial``."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        held = (await health(agent))["manifest"]["serial"]
        if held == serial:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{agent.settings.agency} still holds serial {held}")
        await asyncio.sleep(0.05)


# --- the revoked agency acting on its own ------------------------------------------------------


def sealed_envelope(fed: LiveFederation, manifest: Manifest, recipient: str, seed: int) -> bytes:
    """An envelope from REVOKED to ``recipient`` as its agent would seal it (MARAC flow)."""
    isa_path = fed.layout.policies / "marac-referrals.yaml"
    isa = load_isa(str(isa_path), isa_path.read_bytes())
    now = datetime.now(UTC)
    payload = generate_referral("marac_referral", random.Random(seed), risk_level="high")
    prepared = prepare(
        isa, sender=REVOKED, recipient="marac-coordinator", purpose="marac_risk_management",
        message_type="marac_referral", payload=payload, now=now, ttl=timedelta(hours=1),
    )  # fmt: skip
    assert prepared.spec is not None, prepared.decision
    key = manifest.current_encryption_key(recipient, now)
    assert key is not None
    return seal(
        prepared.payload,
        dataclasses.replace(prepared.spec, recipient=recipient),
        signing_key=read_private(fed.layout.agency_dir(REVOKED) / "keys" / "signing.key"),
        recipient_public=key.public_bytes(),
        now=now,
    )


async def publish_as_revoked(fed: LiveFederation, envelopes: dict[str, bytes]) -> None:
    """Publish each envelope to its recipient exactly as the agent transport does."""
    connection = await aio_pika.connect(fed.amqp_url(REVOKED))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        for recipient, body in envelopes.items():
            message = aio_pika.Message(
                body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, type="envelope",
                message_id=peek_header(body).id, user_id=fed.users[REVOKED],
                content_type="application/octet-stream",
            )  # fmt: skip
            await exchange.publish(message, routing_key=recipient, mandatory=True)


async def take(
    fed: LiveFederation, queue: str, count: int, within: float = 20
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take ``count`` messages from ``queue`` as the admin (fewer if the time runs out)."""
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(fed.amqp_url())
    async with connection:
        channel = await connection.channel()
        source = await channel.get_queue(queue, ensure=False)
        deadline = asyncio.get_running_loop().time() + within
        while len(taken) < count and asyncio.get_running_loop().time() < deadline:
            message = await source.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
            else:
                taken.append(message)
    return taken


async def receipts_for(
    fed: LiveFederation, manifest: Manifest, ids: set[str]
) -> dict[str, Receipt]:
    """The verified receipts in REVOKED's inbox queue for the envelope ``ids``."""
    found: dict[str, Receipt] = {}
    for message in await take(fed, inbox_queue(REVOKED), len(ids), within=20):
        receipt = verify_receipt(message.body, manifest=manifest)
        if receipt.envelope_id in ids:
            found[receipt.envelope_id] = receipt
        if len(found) == len(ids):
            break
    return found


async def inbox_ids(agent: AgentHandle) -> set[str]:
    status, page = await agent.get("/v1/inbox?after=0&limit=500")
    assert status == 200, page
    return {item["id"] for item in page["items"]}


async def refused_submission(police: AgentHandle) -> dict[str, Any]:
    """police-scotland's case system tries to refer to REVOKED under their ISA: refused at
    submit with the 503 problem that names the cause (issue 15.8: a revoked recipient is a fact
    of the federation's trust, not an ISA decision, so never a 403 denial)."""
    payload = generate_referral("police_concern", random.Random(7), risk_level="high")
    status, problem = await police.post("/v1/messages", {
        "to": REVOKED, "isa": "isa-police-assist-advocacy", "purpose": "advocacy_after_charge",
        "type": "police_concern", "payload": payload,
    })  # fmt: skip
    assert status == 503, problem
    assert isinstance(problem, dict)
    assert problem["type"] == "urn:isa-relay:problem:recipient-key-unavailable"
    return problem


class TestRevokedSender:
    async def test_every_agent_rejects_its_messages_once_it_has_the_new_serial(
        self, federation: LiveFederation
    ) -> None:
        """Delivered before; with the new serial: sender_revoked everywhere, none stored or sent."""
        fed = federation
        others = sorted(a.id for a in fed.dev.agencies if a.id != REVOKED)
        async with polling_agents(fed, *others) as agents:
            before = federation_manifest(fed)
            control = sealed_envelope(fed, before, "marac-coordinator", seed=1)
            await publish_as_revoked(fed, {"marac-coordinator": control})
            [delivered] = await agents["marac-coordinator"].drain_inbox(1)
            assert delivered["from"] == REVOKED

            serial = revoke_agency(
                fed.layout, agency_id=REVOKED, reason="SYN compromised key", now=datetime.now(UTC)
            )
            for agent in agents.values():
                await wait_for_serial(agent, serial)

            refused = await refused_submission(agents["police-scotland"])
            assert refused["detail"] == f"{REVOKED} is revoked in the manifest"

            envelopes = {r: sealed_envelope(fed, before, r, seed=i) for i, r in enumerate(others)}
            ids = {peek_header(body).id: r for r, body in envelopes.items()}
            await publish_as_revoked(fed, envelopes)
            after = federation_manifest(fed)
            receipts = await receipts_for(fed, after, set(ids) | {
                peek_header(control).id})  # fmt: skip

            assert receipts[peek_header(control).id].status == "delivered"
            for envelope_id, recipient in ids.items():
                receipt = receipts[envelope_id]
                assert (receipt.issuer, receipt.status, receipt.reason) == (
                    recipient, "rejected", "sender_revoked",
                )  # fmt: skip
                assert envelope_id not in await inbox_ids(agents[recipient])
                [dead] = await take(fed, dead_letter_queue(recipient), 1)
                assert dead.message_id == envelope_id

    async def test_it_can_no_longer_connect_after_provisioning(
        self, federation: LiveFederation
    ) -> None:
        """provision deletes the revoked user: its open connection closes, a new login fails."""
        fed = federation
        held = await aio_pika.connect(fed.amqp_url(REVOKED))
        closed = asyncio.Event()
        held.close_callbacks.add(lambda *_: closed.set())
        try:
            revoke_agency(fed.layout, agency_id=REVOKED, reason="SYN", now=datetime.now(UTC))
            out = io.StringIO()
            code = await asyncio.to_thread(
                provision_command, fed.layout.broker_toml, dry_run=False, environ={}, out=out
            )
            assert code == 0, out.getvalue()
            assert f"- user {fed.users[REVOKED]}" in out.getvalue()
            await asyncio.wait_for(closed.wait(), timeout=15)
        finally:
            await held.close()
        with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(fed.amqp_url(REVOKED))
        still = await aio_pika.connect(fed.amqp_url("police-scotland"))
        await still.close()


class TestAgencyLifecycle:
    async def test_an_added_agency_can_connect_once_provisioned_and_not_after_revocation(
        self, federation: LiveFederation
    ) -> None:
        """agency add -> provision: login works; agency revoke -> provision: login refused."""
        fed = federation
        user = f"{fed.users[REVOKED].removesuffix(REVOKED)}syn-newcomer"
        added = add_agency(
            fed.layout, agency_id="syn-newcomer", name="SYN newcomer", broker_user=user,
            public_key=SigningKey.generate().verify_key, now=datetime.now(UTC),
        )  # fmt: skip
        url = fed.server.amqp_url_for(fed.vhost, user, added.broker_password)
        try:
            await asyncio.to_thread(provision_command, fed.layout.broker_toml, dry_run=False,
                                    environ={}, out=io.StringIO())  # fmt: skip
            connection = await aio_pika.connect(url)
            await connection.close()
            revoke_agency(fed.layout, agency_id="syn-newcomer", reason="SYN", now=datetime.now(UTC))
            await asyncio.to_thread(provision_command, fed.layout.broker_toml, dry_run=False,
                                    environ={}, out=io.StringIO())  # fmt: skip
            with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
                await aio_pika.connect(url)
        finally:
            fed.server.discard_user(user)


# --- one key or one certificate revoked on its own (issue 15.4) --------------------------------


def _rotate_and_announce(fed: LiveFederation, agency: str) -> tuple[str, str]:
    """``agency`` rotates (isa-agent keys rotate) and the operator publishes the new key;
    returns (the previous kid, the new kid)."""
    from agent.cli import main as agent_main
    from broker.agency import announce_key

    before = {p.stem for p in fed.layout.announcements(agency).glob("*.json")}
    assert agent_main(["keys", "rotate", "--config", str(fed.dev.agency(agency).config)]) == 0
    data_dir = fed.dev.agency(agency).config.parent / "data" / "announcements"
    [new] = [p for p in data_dir.glob("*.json") if p.stem not in before]
    note, _ = announce_key(fed.layout, new.read_bytes(), datetime.now(UTC))
    [old] = before
    return old, note.kid


class TestSingleRevocation:
    async def test_a_revoked_kid_is_not_used_by_a_sender_after_one_poll(
        self, federation: LiveFederation
    ) -> None:
        """assist's newest kid revoked (keyCompromise): police-scotland's next referral, once
        it holds that serial, is sealed to assist's previous key and delivered."""
        from broker.revocation import revoke_key
        from tests.integration.test_audit_e2e import _referral

        fed = federation
        old, new = await asyncio.to_thread(_rotate_and_announce, fed, "assist")
        await asyncio.sleep(1.1)  # the new key starts at the next whole second
        async with polling_agents(fed, "police-scotland", "assist") as agents:
            police = agents["police-scotland"]
            serial = revoke_key(fed.layout, agency_id="assist", kid=new, reason="keyCompromise",
                                now=datetime.now(UTC))  # fmt: skip
            await wait_for_serial(police, serial)
            status, body = await police.post(
                "/v1/messages", _referral(9, "Eli SYNTHMOOR", "1975-09-09")
            )
            assert status == 202, body
            final = await police.wait_status(body["id"], {"delivered", "rejected"})
        async with agent_store(police.settings) as store:
            sealed_to = (await store.message_status(body["id"])).header["recipient_key"]
        assert (sealed_to, final["status"]) == (old, "delivered")

    async def test_an_envelope_signed_under_a_revoked_certificate_is_refused_with_the_reason(
        self, federation: LiveFederation
    ) -> None:
        """assist's certificate revoked (keyCompromise): its envelope is dead-lettered and
        answered with a signed rejection naming sender_certificate_revoked."""
        from broker.revocation import revoke_certificate

        fed = federation
        async with polling_agents(fed, "marac-coordinator") as agents:
            marac = agents["marac-coordinator"]
            before = federation_manifest(fed)
            fingerprint = pki.fingerprint(
                pki.certificate_from_bytes(fed.layout.agency_cert(REVOKED).read_bytes())
            )
            serial = revoke_certificate(fed.layout, agency_id=REVOKED, certificate=fingerprint,
                                        reason="keyCompromise", now=datetime.now(UTC))  # fmt: skip
            await wait_for_serial(marac, serial)
            envelope = sealed_envelope(fed, before, "marac-coordinator", seed=11)
            envelope_id = peek_header(envelope).id
            await publish_as_revoked(fed, {"marac-coordinator": envelope})
            receipts = await receipts_for(fed, federation_manifest(fed), {envelope_id})
            assert envelope_id not in await inbox_ids(marac)
        receipt = receipts[envelope_id]
        assert (receipt.status, receipt.reason) == ("rejected", "sender_certificate_revoked")
