"""provision.plan: the pure comparison of broker.toml with what RabbitMQ has."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.config import BrokerConfig, broker_config_from_dict, rabbit_password_hash
from broker.provision import (
    HASHING_ALGORITHM,
    BrokerState,
    Change,
    PassiveDeclareCheck,
    agency_permissions,
    inbox_arguments,
    passive_declare_check,
    plan,
)
from broker.rabbitmq import BindingInfo, ConnectionInfo, PermissionInfo, QueueInfo, UserInfo
from tests.unit.broker.fake_broker import apply_to_state

HASH_A = rabbit_password_hash("synthetic-a", b"\x01\x01\x01\x01")
HASH_B = rabbit_password_hash("synthetic-b", b"\x02\x02\x02\x02")
EMPTY = BrokerState(vhost_exists=False)


def make_config(*agencies: dict[str, Any], delivery_limit: int = 5) -> BrokerConfig:
    return broker_config_from_dict({
        "rabbitmq": {"vhost": "isa-relay", "admin_user": "admin",
                     "delivery_limit": delivery_limit},
        "agencies": list(agencies),
    })


TWO = make_config({"id": "assist", "password_hash": HASH_A},
                  {"id": "police", "password_hash": HASH_B})


def provisioned(config: BrokerConfig, **extra: Any) -> BrokerState:
    """The state a successful provisioning leaves, plus ``extra`` fields replaced."""
    state = apply_to_state(EMPTY, plan(config, EMPTY))
    return state.model_copy(update=extra)


def lines(changes: list[Change]) -> list[str]:
    return [c.line() for c in changes]


class TestPlanOnAnEmptyBroker:
    def test_creates_exactly_the_topology(self) -> None:
        """An empty broker gets the vhost, two exchanges, four queues, bindings, users, grants."""
        assert lines(plan(make_config({"id": "assist", "password_hash": HASH_A}), EMPTY)) == [
            "+ vhost isa-relay",
            "+ permissions admin (configure .*  write .*  read .*)",
            "+ exchange isa.messages (direct, durable)",
            "+ exchange isa.dead (direct, durable)",
            "+ queue isa.inbox.assist (quorum, delivery-limit 5, dead-letter isa.dead)",
            "+ queue isa.dead.assist (quorum)",
            "+ binding isa.dead -> isa.dead.assist (key assist)",
            "+ binding isa.messages -> isa.inbox.assist (key assist)",
            "+ user assist (agency assist, no tags)",
            r"+ permissions assist (configure ^$  write ^isa\.messages$  "
            r"read ^isa\.inbox\.assist$)",
        ]

    def test_inbox_is_a_dead_lettering_quorum_queue_with_the_configured_limit(self) -> None:
        """The inbox queue's arguments carry the quorum type, the DLX and the delivery limit."""
        config = make_config({"id": "assist", "password_hash": HASH_A}, delivery_limit=3)
        create = next(c for c in plan(config, EMPTY) if c.name == "isa.inbox.assist")
        assert create.spec["arguments"] == {
            "x-queue-type": "quorum", "x-dead-letter-exchange": "isa.dead",
            "x-dead-letter-routing-key": "assist", "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish", "x-delivery-limit": 3,
        }

    def test_agency_user_may_configure_nothing_write_the_exchange_read_its_inbox(self) -> None:
        """The permission regexes are anchored and escaped."""
        assert agency_permissions("police-scotland") == (
            "^$", r"^isa\.messages$", r"^isa\.inbox\.police\-scotland$")

    def test_change_repr_shows_no_password_hash(self) -> None:
        """A plan printed for debugging leaks no password hash."""
        assert all(HASH_A not in repr(c) for c in plan(TWO, EMPTY))


class TestIdempotence:
    def test_second_plan_is_empty(self) -> None:
        """After applying a plan, planning again finds nothing to do."""
        assert plan(TWO, provisioned(TWO)) == []

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.sampled_from(["assist", "police", "health", "council"]), unique=True),
        st.sets(st.sampled_from(["assist", "police", "health", "council"])),
        st.integers(1, 20),
    )
    def test_any_config_over_any_earlier_provisioning_converges(
        self, ids: list[str], revoked: set[str], limit: int
    ) -> None:
        """Re-provisioning over a broker set up for other agencies converges in one pass."""
        before = make_config(*({"id": i, "password_hash": HASH_A} for i in
                               ["assist", "police", "health", "council"]))
        after = make_config(*({"id": i, "password_hash": HASH_B, "revoked": i in revoked}
                              for i in ids), delivery_limit=limit)
        state = apply_to_state(provisioned(before), plan(after, provisioned(before)))
        assert plan(after, state) == []


class TestDrift:
    def test_changed_password_hash_updates_the_user(self) -> None:
        """A new password hash in the config is pushed to RabbitMQ."""
        users = (UserInfo(name="assist", password_hash=HASH_B, hashing_algorithm=HASHING_ALGORITHM),
                 UserInfo(name="police", password_hash=HASH_B, hashing_algorithm=HASHING_ALGORITHM))
        assert lines(plan(TWO, provisioned(TWO, users=users))) == [
            "~ user assist (password changed)"]

    def test_agency_user_with_tags_loses_them(self) -> None:
        """An agency user tagged administrator (or impersonator) is reset to no tags."""
        users = (UserInfo(name="assist", password_hash=HASH_A, hashing_algorithm=HASHING_ALGORITHM,
                          tags=("impersonator",)),
                 UserInfo(name="police", password_hash=HASH_B, hashing_algorithm=HASHING_ALGORITHM))
        assert lines(plan(TWO, provisioned(TWO, users=users))) == [
            "~ user assist (tags impersonator removed)"]

    def test_widened_permissions_are_narrowed(self) -> None:
        """An agency granted read on every queue is put back to its own inbox."""
        state = provisioned(TWO)
        perms = tuple(p if p.user != "assist" else p.model_copy(update={"read": ".*"})
                      for p in state.permissions)
        changes = plan(TWO, state.model_copy(update={"permissions": perms}))
        assert [(c.action, c.name, c.spec["read"]) for c in changes] == [
            ("update", "assist", r"^isa\.inbox\.assist$")]

    def test_permissions_of_unknown_users_are_removed(self) -> None:
        """Only the admin and active agencies may reach the vhost."""
        stray = PermissionInfo(user="intruder", vhost="isa-relay", configure="", write=".*",
                               read=".*")
        state = provisioned(TWO)
        state = state.model_copy(update={"permissions": (*state.permissions, stray)})
        assert lines(plan(TWO, state)) == ["- permissions intruder (not an active agency)"]

    def test_stray_binding_that_would_leak_mail_is_deleted(self) -> None:
        """A binding routing assist's key into police's inbox is removed."""
        leak = BindingInfo(source="isa.messages", destination="isa.inbox.police",
                           destination_type="queue", routing_key="assist",
                           properties_key="assist")
        state = provisioned(TWO)
        state = state.model_copy(update={"bindings": (*state.bindings, leak)})
        assert lines(plan(TWO, state)) == [
            "- binding isa.messages -> isa.inbox.police (key assist: not in the config)"]

    def test_bindings_on_other_exchanges_are_left_alone(self) -> None:
        """Provisioning owns isa.messages and isa.dead only (the default exchange is implicit)."""
        default = BindingInfo(source="", destination="isa.inbox.assist",
                              destination_type="queue", routing_key="isa.inbox.assist")
        state = provisioned(TWO)
        assert plan(TWO, state.model_copy(update={"bindings": (*state.bindings, default)})) == []


def with_queue(state: BrokerState, name: str, **fields: Any) -> BrokerState:
    old = next((q for q in state.queues if q.name == name), None)
    new = (old or QueueInfo(name=name, durable=True)).model_copy(update=fields)
    return state.model_copy(update={"queues": (*(q for q in state.queues if q.name != name),
                                               new)})


class TestQueuesAreNeverDeletedWithMessages:
    def test_empty_queue_with_old_limit_is_recreated(self) -> None:
        """An empty inbox with another delivery limit is deleted and declared again."""
        state = with_queue(provisioned(TWO), "isa.inbox.assist", messages=0,
                           arguments=inbox_arguments("assist", 9))
        assert [(c.action, c.name) for c in plan(TWO, state)] == [
            ("delete", "isa.inbox.assist"), ("create", "isa.inbox.assist")]

    def test_queue_holding_messages_is_a_conflict_not_a_delete(self) -> None:
        """An inbox holding messages is never deleted; the operator is told."""
        state = with_queue(provisioned(TWO), "isa.inbox.assist", messages=3,
                           arguments=inbox_arguments("assist", 9))
        changes = plan(TWO, state)
        assert [(c.action, c.name) for c in changes] == [("conflict", "isa.inbox.assist")]
        assert "holds 3 messages" in changes[0].detail

    def test_orphan_managed_queue_is_deleted_only_when_empty(self) -> None:
        """isa.inbox.gone (no agency) is deleted when empty and kept when it holds messages."""
        empty = with_queue(provisioned(TWO), "isa.inbox.gone", messages=0)
        full = with_queue(provisioned(TWO), "isa.inbox.gone", messages=2)
        assert [c.action for c in plan(TWO, empty)] == ["delete"]
        assert [c.action for c in plan(TWO, full)] == ["conflict"]

    def test_queue_without_statistics_yet_counts_as_holding_messages(self) -> None:
        """Unknown depth (no statistics yet) is treated as not empty."""
        state = with_queue(provisioned(TWO), "isa.inbox.assist", messages=None,
                           arguments=inbox_arguments("assist", 9))
        changes = plan(TWO, state)
        assert [(c.action, c.detail.endswith("holds an unknown number of messages: left as is"))
                for c in changes] == [("conflict", True)]

    def test_queues_outside_the_isa_namespace_are_ignored(self) -> None:
        """An operator's own queue in the vhost is not provisioning's business."""
        assert plan(TWO, with_queue(provisioned(TWO), "ops.audit", messages=0)) == []


class TestRevocation:
    REVOKED = make_config({"id": "assist", "password_hash": HASH_A, "revoked": True},
                          {"id": "police", "password_hash": HASH_B})

    def test_revoked_user_is_deleted_and_its_connections_closed(self) -> None:
        """Revocation deletes the user and closes its connections, and nothing else's."""
        conns = (ConnectionInfo(name="10.0.0.1:1 -> 10.0.0.2:5672", user="assist"),
                 ConnectionInfo(name="10.0.0.3:1 -> 10.0.0.2:5672", user="police"))
        changes = plan(self.REVOKED, provisioned(TWO, connections=conns))
        assert lines(changes) == [
            "- user assist (agency assist revoked)",
            "x connection 10.0.0.1:1 -> 10.0.0.2:5672 (user assist, agency assist revoked)",
        ]

    def test_revoked_agency_queues_are_kept(self) -> None:
        """The revoked agency's inbox (evidence) is neither deleted nor unbound."""
        changes = plan(self.REVOKED, provisioned(TWO))
        assert all(c.kind not in ("queue", "binding") for c in changes)

    def test_revoked_agency_topology_is_not_created(self) -> None:
        """Revoking an agency that was never provisioned creates nothing for it."""
        names = {c.name for c in plan(self.REVOKED, EMPTY)}
        assert not any("assist" in n for n in names)


@pytest.mark.parametrize("missing", ["isa.messages", "isa.dead"])
def test_missing_exchange_is_recreated(missing: str) -> None:
    """A deleted exchange comes back as a durable direct exchange."""
    state = provisioned(TWO)
    state = state.model_copy(update={"exchanges": tuple(
        e for e in state.exchanges if e.name != missing)})
    assert lines(plan(TWO, state)) == [f"+ exchange {missing} (direct, durable)"]


class TestPassiveDeclareCheck:
    @pytest.mark.parametrize(
        ("version", "check"),
        [("3.10.8", PassiveDeclareCheck.NOTHING), ("3.13.7", PassiveDeclareCheck.NOTHING),
         ("4.2.5", PassiveDeclareCheck.NOTHING), ("4.2.6", PassiveDeclareCheck.CONFIGURE),
         ("4.3.0-rc.1", PassiveDeclareCheck.CONFIGURE), ("4.3.0", PassiveDeclareCheck.CONFIGURE),
         ("4.2.7", PassiveDeclareCheck.ANY_PERMISSION),
         ("4.3.1", PassiveDeclareCheck.ANY_PERMISSION),
         ("4.4.0", PassiveDeclareCheck.ANY_PERMISSION), ("", PassiveDeclareCheck.NOTHING),
         ("not a version", PassiveDeclareCheck.NOTHING)],
    )  # fmt: skip
    def test_rabbitmq_version_decides_what_a_passive_declare_checks(
        self, version: str, check: PassiveDeclareCheck
    ) -> None:
        """Nothing up to 4.2.5, configure in 4.2.6 and 4.3.0, any permission from 4.2.7 / 4.3.1."""
        assert passive_declare_check(version) is check
