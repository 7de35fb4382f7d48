"""`isa-broker provision` against the real RabbitMQ: topology, idempotence, revocation, DLX.

Each federation here has its own vhost and its own agency users (users are global, so their
names are unique per test) and removes both afterwards.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from broker.cli import main
from broker.commands.provision import provision_command
from broker.config import BrokerConfig, broker_config_from_dict, rabbit_password_hash
from broker.config import render_broker_toml as render
from broker.provision import (
    PassiveDeclareCheck,
    agency_permissions,
    inbox_arguments,
    passive_declare_check,
)
from tests.support.rabbitmq import BrokerApiError, RabbitServer

pytestmark = pytest.mark.rabbitmq

DELIVERY_LIMIT = 2


@dataclass
class Federation:
    """A broker.toml for two synthetic agencies, on its own vhost, and their passwords."""

    server: RabbitServer
    path: Path
    config: BrokerConfig
    passwords: dict[str, str]

    @property
    def a(self) -> str:
        return self.config.agencies[0].id

    @property
    def b(self) -> str:
        return self.config.agencies[1].id

    @property
    def vhost(self) -> str:
        return self.config.rabbitmq.vhost

    def amqp_url(self, agency: str, password: str | None = None) -> str:
        pw = self.passwords[agency] if password is None else password
        return self.server.amqp_url_for(self.vhost, agency, pw)

    def provision(self, *, dry_run: bool = False, **raw_changes: Any) -> tuple[int, str]:
        """Write the config (with ``raw_changes`` applied) and run the provision command."""
        if raw_changes:
            self.config = broker_config_from_dict(_merge(self.config, raw_changes))
        self.path.write_text(render(self.config), encoding="utf-8")
        out = io.StringIO()
        code = provision_command(self.path, dry_run=dry_run, environ={}, out=out)
        return code, out.getvalue()

    def api(self, method: str, *segments: str) -> Any:
        return self.server.api(method, "/".join(urllib.parse.quote(s, safe="")
                                                for s in segments))


def _merge(config: BrokerConfig, changes: dict[str, Any]) -> dict[str, Any]:
    raw = config.model_dump()
    raw["rabbitmq"] |= changes.get("rabbitmq", {})
    revoked = changes.get("revoked", ())
    raw["agencies"] = [a | {"revoked": a["revoked"] or a["id"] in revoked}
                       for a in raw["agencies"]]
    return raw


def make_federation(server: RabbitServer, directory: Path) -> Federation:
    tag = uuid.uuid4().hex[:10]
    ids = [f"t{tag}-a", f"t{tag}-b"]
    passwords = {i: secrets.token_urlsafe(16) for i in ids}
    config = broker_config_from_dict({
        "rabbitmq": {"management_url": server.management_url, "amqp_url": server.amqp_url,
                     "vhost": f"prov-{tag}", "admin_user": server.admin_user,
                     "admin_password": server.admin_password,
                     "delivery_limit": DELIVERY_LIMIT},
        "agencies": [{"id": i, "name": f"Agency {i} (synthetic)",
                      "password_hash": rabbit_password_hash(passwords[i])} for i in ids],
    })
    return Federation(server, directory / "broker.toml", config, passwords)


def remove_federation(fed: Federation) -> None:
    fed.server.discard_vhost(fed.vhost)
    for agency in fed.config.agencies:
        fed.server.discard_user(agency.broker_user)


@pytest.fixture
def federation(rabbit_server: RabbitServer, tmp_path: Path) -> Iterator[Federation]:
    """A fresh, not yet provisioned federation; its vhost and users are deleted afterwards."""
    fed = make_federation(rabbit_server, tmp_path)
    try:
        yield fed
    finally:
        remove_federation(fed)


def vhost_exists(fed: Federation) -> bool:
    try:
        fed.api("GET", "vhosts", fed.vhost)
    except BrokerApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


class TestProvisionCreatesTheTopology:
    def test_dry_run_prints_the_plan_and_changes_nothing(self, federation: Federation) -> None:
        """--dry-run lists every change but the vhost still does not exist."""
        code, out = federation.provision(dry_run=True)
        assert code == 0
        assert f"+ vhost {federation.vhost}" in out
        assert f"+ queue isa.inbox.{federation.a} (quorum, delivery-limit 2" in out
        assert not vhost_exists(federation)

    def test_queues_are_exactly_the_agencies_inboxes_and_dead_letter_queues(
        self, federation: Federation
    ) -> None:
        """Four quorum queues with the contract's arguments, nothing else."""
        assert federation.provision()[0] == 0
        queues = {q["name"]: q for q in federation.api("GET", "queues", federation.vhost)}
        a, b = federation.a, federation.b
        assert set(queues) == {f"isa.inbox.{a}", f"isa.dead.{a}", f"isa.inbox.{b}",
                               f"isa.dead.{b}"}
        assert queues[f"isa.inbox.{a}"]["arguments"] == inbox_arguments(a, DELIVERY_LIMIT)
        assert queues[f"isa.dead.{b}"]["arguments"] == {"x-queue-type": "quorum"}
        assert all(q["durable"] and q["type"] == "quorum" for q in queues.values())

    def test_exchanges_and_bindings_route_each_agency_id_to_its_own_queue(
        self, federation: Federation
    ) -> None:
        """isa.messages and isa.dead are durable direct exchanges; key X reaches X's queue only."""
        federation.provision()
        exchanges = {e["name"]: e for e in federation.api("GET", "exchanges", federation.vhost)
                     if e["name"].startswith("isa.")}
        assert {(n, e["type"], e["durable"]) for n, e in exchanges.items()} == {
            ("isa.messages", "direct", True), ("isa.dead", "direct", True)}
        bindings = {(b["source"], b["routing_key"], b["destination"])
                    for b in federation.api("GET", "bindings", federation.vhost) if b["source"]}
        a, b = federation.a, federation.b
        assert bindings == {("isa.messages", a, f"isa.inbox.{a}"),
                            ("isa.messages", b, f"isa.inbox.{b}"),
                            ("isa.dead", a, f"isa.dead.{a}"), ("isa.dead", b, f"isa.dead.{b}")}

    def test_each_agency_user_has_no_tags_and_only_its_permissions(
        self, federation: Federation
    ) -> None:
        """Users without tags; on the vhost: the admin plus one narrow grant per agency."""
        federation.provision()
        perms = {p["user"]: (p["configure"], p["write"], p["read"])
                 for p in federation.api("GET", "vhosts", federation.vhost, "permissions")}
        assert perms == {federation.server.admin_user: (".*", ".*", ".*"),
                         federation.a: agency_permissions(federation.a),
                         federation.b: agency_permissions(federation.b)}
        assert federation.api("GET", "users", federation.a)["tags"] in ([], "")

    def test_second_run_reports_no_changes(self, federation: Federation) -> None:
        """Provisioning is idempotent: the second run plans nothing."""
        federation.provision()
        code, out = federation.provision()
        assert (code, out.splitlines()[0]) == (0, f"{federation.server.management_url} vhost "
                                                  f"{federation.vhost}: no changes")


class TestProvisionNamesWhatPermissionsCannotStop:
    def test_provision_says_when_this_rabbitmq_leaves_passive_declares_unchecked(
        self, federation: Federation
    ) -> None:
        """Up to RabbitMQ 4.2.5 the last line warns that queue depths are readable (rule 7)."""
        version = federation.api("GET", "overview")["rabbitmq_version"]
        code, out = federation.provision()
        note = (f"note: RabbitMQ {version} checks no permission on a passive queue.declare: any "
                "agency can read the message and consumer counts of any queue (never its "
                "messages); 4.2.7+ / 4.3.1+ refuse it")  # fmt: skip
        unchecked = passive_declare_check(version) is PassiveDeclareCheck.NOTHING
        assert (code, out.splitlines()[-1] == note) == (0, unchecked)


class TestProvisionRepairsDrift:
    def test_leaking_binding_and_stray_grant_are_removed(self, federation: Federation) -> None:
        """A binding sending A's mail to B's inbox, a widened grant, a stranger's grant: undone."""
        federation.provision()
        a, b, vhost = federation.a, federation.b, federation.vhost
        federation.server.api(
            "POST", f"bindings/{vhost}/e/isa.messages/q/isa.inbox.{b}",
            {"routing_key": a, "arguments": {}})
        federation.server.api("PUT", f"permissions/{vhost}/{a}",
                              {"configure": ".*", "write": ".*", "read": ".*"})
        stranger = f"{a}-stranger"
        federation.server.api("PUT", f"users/{stranger}", {"password": "synthetic", "tags": ""})
        try:
            federation.server.api("PUT", f"permissions/{vhost}/{stranger}",
                                  {"configure": "", "write": "", "read": ".*"})
            code, out = federation.provision()
        finally:
            federation.server.api("DELETE", f"users/{stranger}")
        assert code == 0
        assert f"- binding isa.messages -> isa.inbox.{b} (key {a}: not in the config)" in out
        assert f"~ permissions {a}" in out
        assert f"- permissions {stranger} (not an active agency)" in out
        assert federation.provision()[1].splitlines()[0].endswith("no changes")

    def test_deleted_exchange_and_queue_come_back(self, federation: Federation) -> None:
        """Whatever an operator deleted by hand is recreated, bindings included."""
        federation.provision()
        federation.api("DELETE", "exchanges", federation.vhost, "isa.messages")
        federation.api("DELETE", "queues", federation.vhost, f"isa.dead.{federation.a}")
        code, out = federation.provision()
        assert code == 0
        assert "+ exchange isa.messages (direct, durable)" in out
        assert f"+ queue isa.dead.{federation.a} (quorum)" in out
        assert federation.provision()[1].splitlines()[0].endswith("no changes")


class TestProvisionCommandErrors:
    def test_cli_provisions_and_exits_zero(
        self, federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`isa-broker provision --config FILE` applies the plan and exits 0."""
        federation.path.write_text(render(federation.config), encoding="utf-8")
        assert main(["provision", "--config", str(federation.path)]) == 0
        assert "applied 16 change(s)" in capsys.readouterr().out

    def test_unreachable_management_api_is_exit_1_without_traceback(
        self, federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A closed port gives a one-line error naming the URL, not a traceback."""
        raw = federation.config.model_dump()
        raw["rabbitmq"]["management_url"] = "http://127.0.0.1:9"
        federation.path.write_text(render(broker_config_from_dict(raw)), encoding="utf-8")
        assert main(["provision", "--config", str(federation.path)]) == 1
        err = capsys.readouterr().err
        assert "management API at http://127.0.0.1:9 is unreachable" in err
        assert "Traceback" not in err

    def test_wrong_admin_password_is_exit_1_and_not_echoed(
        self, federation: Federation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A refused login says whose credentials failed, never the password."""
        raw = federation.config.model_dump()
        raw["rabbitmq"]["admin_password"] = "wrong-synthetic-password"
        federation.path.write_text(render(broker_config_from_dict(raw)), encoding="utf-8")
        assert main(["provision", "--config", str(federation.path)]) == 1
        err = capsys.readouterr().err
        assert "refused the credentials of admin user" in err
        assert "wrong-synthetic-password" not in err

    def test_environment_password_overrides_the_file(self, federation: Federation) -> None:
        """ISA_BROKER_ADMIN_PASSWORD is applied at the edge and wins over the file."""
        raw = federation.config.model_dump()
        raw["rabbitmq"]["admin_password"] = "wrong-synthetic-password"
        federation.path.write_text(render(broker_config_from_dict(raw)), encoding="utf-8")
        environ = {"ISA_BROKER_ADMIN_PASSWORD": federation.server.admin_password}
        code = provision_command(federation.path, dry_run=True, environ=environ,
                                 out=io.StringIO())
        assert code == 0


async def wait_for(predicate: Any, within: float = 10.0) -> bool:
    """Poll a sync predicate (management statistics lag the broker by up to 5 s)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(predicate):
            return True
        await asyncio.sleep(0.2)
    return False


def connections_of(fed: Federation, user: str) -> list[Any]:
    return [c for c in fed.api("GET", "connections") if c.get("user") == user]


async def publish(fed: Federation, sender: str, to: str, body: bytes) -> None:
    connection = await aio_pika.connect(fed.amqp_url(sender))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("isa.messages", ensure=False)
        await exchange.publish(aio_pika.Message(body, user_id=sender, delivery_mode=2),
                               routing_key=to, mandatory=True)


class TestRevocation:
    async def test_revoked_agency_is_disconnected_and_cannot_reconnect(
        self, federation: Federation
    ) -> None:
        """Provisioning a revocation closes the open connection and refuses a new login."""
        await asyncio.to_thread(federation.provision)
        connection = await aio_pika.connect(federation.amqp_url(federation.a))
        closed = asyncio.Event()
        connection.close_callbacks.add(lambda *_: closed.set())
        assert await wait_for(lambda: connections_of(federation, federation.a))
        code, out = await asyncio.to_thread(federation.provision, revoked=[federation.a])
        assert code == 0
        assert f"- user {federation.a} (agency {federation.a} revoked)" in out
        assert "x connection" in out
        await asyncio.wait_for(closed.wait(), timeout=5)
        with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(federation.amqp_url(federation.a))

    async def test_revoked_agency_inbox_and_its_messages_are_kept(
        self, federation: Federation
    ) -> None:
        """The revoked agency's queue (evidence) survives with its message."""
        await asyncio.to_thread(federation.provision)
        await publish(federation, federation.b, federation.a, b"synthetic evidence")
        await asyncio.to_thread(federation.provision, revoked=[federation.a])
        admin = await aio_pika.connect(federation.server.amqp_url_for(federation.vhost))
        async with admin:
            channel = await admin.channel()
            inbox = await channel.declare_queue(f"isa.inbox.{federation.a}", passive=True)
        assert inbox.declaration_result.message_count == 1

    async def test_changed_limit_on_a_queue_holding_messages_is_a_conflict(
        self, federation: Federation
    ) -> None:
        """A new delivery limit never deletes an inbox holding mail: exit 1, queue intact."""
        await asyncio.to_thread(federation.provision)
        await publish(federation, federation.b, federation.a, b"synthetic")
        inbox = f"isa.inbox.{federation.a}"
        assert await wait_for(lambda: federation.api(
            "GET", "queues", federation.vhost, inbox).get("messages") == 1)
        code, out = await asyncio.to_thread(
            federation.provision, rabbitmq={"delivery_limit": DELIVERY_LIMIT + 1})
        assert code == 1
        assert f"! queue {inbox} (arguments differ" in out
        assert federation.api("GET", "queues", federation.vhost, inbox)["messages"] == 1


class TestDeadLettering:
    async def test_message_rejected_without_requeue_lands_in_dead_queue(
        self, federation: Federation
    ) -> None:
        """basic.reject(requeue=False) moves the message to isa.dead.<agency>."""
        await asyncio.to_thread(federation.provision)
        await publish(federation, federation.b, federation.a, b"poison-1")
        assert await dead_lettered_after(federation, rejections=1, requeue=False) == b"poison-1"

    async def test_message_redelivered_past_the_delivery_limit_is_dead_lettered(
        self, federation: Federation
    ) -> None:
        """After delivery_limit requeues the quorum queue dead-letters the message."""
        await asyncio.to_thread(federation.provision)
        await publish(federation, federation.b, federation.a, b"poison-2")
        body = await dead_lettered_after(federation, rejections=DELIVERY_LIMIT + 1, requeue=True)
        assert body == b"poison-2"


async def dead_lettered_after(fed: Federation, *, rejections: int, requeue: bool) -> bytes:
    """Reject A's message ``rejections`` times, then read it from A's dead-letter queue."""
    connection = await aio_pika.connect(fed.amqp_url(fed.a))
    async with connection:
        channel = await connection.channel()
        inbox = await channel.get_queue(f"isa.inbox.{fed.a}", ensure=False)
        for _ in range(rejections):
            message = await inbox.get(timeout=5)
            await message.reject(requeue=requeue)
        assert await inbox.get(fail=False, timeout=5) is None
    admin = await aio_pika.connect(fed.server.amqp_url_for(fed.vhost))
    async with admin:
        channel = await admin.channel()
        dead = await channel.get_queue(f"isa.dead.{fed.a}", ensure=False)
        for _ in range(50):
            dead_message = await dead.get(fail=False, timeout=5)
            if dead_message is not None:
                await dead_message.ack()
                return dead_message.body
            await asyncio.sleep(0.1)
    raise AssertionError("nothing reached the dead-letter queue")
