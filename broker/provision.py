"""Provisioning: compare the topology ``broker.toml`` asks for with what RabbitMQ has, then fix it.

Rules:
1. :func:`plan` is pure: ``(config, state) -> [Change]``. It performs no I/O; :func:`read_state`
   and :func:`apply` are the only functions that talk to the broker (through
   :class:`~broker.rabbitmq.ManagementClient`).
2. Idempotent: applying a plan and planning again yields no changes.
3. Desired, per active agency A (names from :mod:`federation.topology`): quorum queue
   ``isa.inbox.A`` (dead-lettering at-least-once to ``isa.dead`` with key A after
   ``delivery_limit`` deliveries, ``x-overflow: reject-publish``, which at-least-once needs),
   bound to ``isa.messages`` with key A; quorum queue ``isa.dead.A`` bound to ``isa.dead`` with
   key A; a user with no tags and the configured password hash; on the vhost the permissions
   configure ``^$``, write ``^isa\\.messages$``, read ``^isa\\.inbox\\.A$`` and nothing else.
   The admin user gets ``.*`` on the vhost (the management API declares as that user).
4. A revoked agency's user is deleted and every connection it holds is closed; its queues and
   bindings are kept (evidence) but never created. Users are broker-wide: provisioning reads,
   creates, changes and deletes only the users ``broker.toml`` names, and each of those carries
   the federation's ``user_prefix`` (``broker.config`` rule 5), so another federation's users
   on the same broker are never touched.
5. Nothing else may reach the vhost: permissions of users that are neither the admin nor an
   active agency are removed, and bindings on ``isa.messages`` / ``isa.dead`` that the config
   does not ask for are deleted (a stray binding would leak one agency's mail to another queue).
6. Queues are never deleted while holding messages: a queue whose arguments differ, or an
   ``isa.inbox.*`` / ``isa.dead.*`` queue no agency owns, is deleted only when empty. When
   statistics show messages, the plan carries a ``conflict`` for the operator instead; at apply
   time the count is read again right before the delete, and classic queues are deleted with
   ``if-empty=true``. RabbitMQ 3.10 refuses ``if-empty`` for quorum queues, so for them a
   message arriving within the statistics interval (5 s by default) before the delete is the
   remaining window; an orphan queue's bindings are deleted before the queue, which closes it.
7. An agency's broker user holds exactly what its agent uses and nothing RabbitMQ lets us take
   away (issue 13 point 5). What RabbitMQ 3.10 checks (``rabbit_channel.erl`` of v3.10.8; topic
   permissions apply to topic exchanges only, and ``isa.messages`` is direct):

   =============================  ==========================  ==============  ===============
   AMQP method                    RabbitMQ checks             agent uses it   agency A may
   =============================  ==========================  ==============  ===============
   basic.publish                  write on the exchange       yes             isa.messages
   basic.consume, ack, nack       read on the queue           yes             isa.inbox.A
   queue.declare passive          nothing (up to 4.2.5)       yes (its inbox) any queue (!)
   basic.get                      read on the queue           no              isa.inbox.A (!)
   queue.purge                    read on the queue           no              isa.inbox.A (!)
   queue.declare, queue.delete    configure on the queue      no              nothing
   exchange.declare, .delete      configure on the exchange   no              nothing
   queue.bind, queue.unbind       write queue, read exchange  no              nothing
   exchange.bind, .unbind         write dest., read source    no              nothing
   =============================  ==========================  ==============  ===============

   The rows marked (!) cannot be taken away: RabbitMQ governs ``basic.get`` and ``queue.purge``
   by the same ``read`` permission as ``basic.consume``, and before 4.2.6 checks nothing on a
   passive declare, which answers the queue's message and consumer counts. So an agency can
   purge its own inbox, which only harms itself (its senders get no receipt; their messages
   expire with a non-delivery report), and can learn the depth and consumer count of any queue
   whose name it knows (all are derived from the public agency ids): metadata, never content.
   RabbitMQ 4.2.7+ / 4.3.1+ check "any permission on that queue" for a passive declare, which
   these grants refuse for every queue but A's own inbox; 4.2.6 and 4.3.0 required
   ``configure``, which an agent must not have, so on them no agent can start consuming.
   :func:`passive_declare_check` tells the three apart and ``isa-broker provision`` says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.config import AgencyEntry, BrokerConfig
from broker.rabbitmq import (
    BindingInfo,
    BrokerApiError,
    ConnectionInfo,
    ExchangeInfo,
    ManagementClient,
    PermissionInfo,
    QueueInfo,
    UserInfo,
)
from federation.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, dead_letter_queue, inbox_queue

__all__ = [
    "ADMIN_PERMISSIONS",
    "HASHING_ALGORITHM",
    "BrokerState",
    "Change",
    "PassiveDeclareCheck",
    "agency_permissions",
    "apply",
    "dead_queue_arguments",
    "inbox_arguments",
    "passive_declare_check",
    "plan",
    "read_state",
]

HASHING_ALGORITHM: Final = "rabbit_password_hashing_sha256"
ADMIN_PERMISSIONS: Final = (".*", ".*", ".*")
_MANAGED_QUEUE = re.compile(r"^isa\.(inbox|dead)\.")
_SYMBOLS: Final = {"create": "+", "update": "~", "delete": "-", "close": "x", "conflict": "!"}

Action = Literal["create", "update", "delete", "close", "conflict"]
Kind = Literal["vhost", "exchange", "queue", "binding", "user", "permissions", "connection"]


class Change(BaseModel):
    """One step of a plan. ``line()`` is what the CLI prints; ``spec`` is what ``apply`` sends."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    action: Action
    kind: Kind
    name: str
    vhost: str
    detail: str = ""
    spec: dict[str, Any] = Field(default_factory=dict, repr=False)

    def line(self) -> str:
        text = f"{_SYMBOLS[self.action]} {self.kind} {self.name}"
        return f"{text} ({self.detail})" if self.detail else text


class BrokerState(BaseModel):
    """What the broker has, as far as provisioning cares (read by :func:`read_state`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vhost_exists: bool
    exchanges: tuple[ExchangeInfo, ...] = ()
    queues: tuple[QueueInfo, ...] = ()
    bindings: tuple[BindingInfo, ...] = ()
    users: tuple[UserInfo, ...] = ()
    permissions: tuple[PermissionInfo, ...] = ()
    connections: tuple[ConnectionInfo, ...] = ()
    rabbitmq_version: str = ""


class PassiveDeclareCheck(StrEnum):
    """What a RabbitMQ version checks before answering a passive ``queue.declare`` (rule 7)."""

    NOTHING = "nothing"  # up to 4.2.5, 3.10 included: any user learns any queue's counts
    CONFIGURE = "configure"  # 4.2.6 and 4.3.0: agents (configure ^$) cannot reach their inbox
    ANY_PERMISSION = "any permission"  # 4.2.7+ and 4.3.1+: only A's own inbox answers A


def passive_declare_check(version: str) -> PassiveDeclareCheck:
    """Rule 7 for the version string RabbitMQ reports (``NOTHING`` if it cannot be read)."""
    match = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    numbers = tuple(int(n) for n in match.groups()) if match else (0, 0, 0)
    if numbers in ((4, 2, 6), (4, 3, 0)):
        return PassiveDeclareCheck.CONFIGURE
    if numbers >= (4, 2, 7):
        return PassiveDeclareCheck.ANY_PERMISSION
    return PassiveDeclareCheck.NOTHING


def inbox_arguments(agency: str, delivery_limit: int) -> dict[str, Any]:
    """The arguments of ``isa.inbox.<agency>``."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": agency,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": delivery_limit,
    }


def dead_queue_arguments() -> dict[str, Any]:
    """The arguments of ``isa.dead.<agency>``."""
    return {"x-queue-type": "quorum"}


def agency_permissions(agency: str) -> tuple[str, str, str]:
    """(configure, write, read): configure nothing, write the exchange, read its own inbox
    (the least an agent can work with: rule 7)."""
    return "^$", f"^{re.escape(EXCHANGE)}$", f"^{re.escape(inbox_queue(agency))}$"


# -- plan -------------------------------------------------------------------------------------


def plan(config: BrokerConfig, state: BrokerState) -> list[Change]:
    """Every change that makes ``state`` match ``config``, in the order to apply them."""
    vhost = config.rabbitmq.vhost
    changes: list[Change] = []
    if not state.vhost_exists:
        changes.append(Change(action="create", kind="vhost", name=vhost, vhost=vhost))
    changes += _plan_admin(config, state)
    changes += _plan_exchanges(vhost, state)
    changes += _plan_queues(config, state)
    changes += _plan_bindings(config, state)
    changes += _plan_users(config, state)
    changes += _plan_revocations(config, state)
    changes += _plan_stale_permissions(config, state)
    changes += _plan_stale_queues(config, state)
    return changes


def _plan_admin(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    user = config.rabbitmq.admin_user
    yield from _permission_change(config.rabbitmq.vhost, user, ADMIN_PERMISSIONS, state)


def _permission_change(
    vhost: str, user: str, wanted: tuple[str, str, str], state: BrokerState
) -> Iterator[Change]:
    have = next((p for p in state.permissions if p.user == user), None)
    if have is not None and (have.configure, have.write, have.read) == wanted:
        return
    spec = dict(zip(("configure", "write", "read"), wanted, strict=True))
    detail = f"configure {wanted[0]}  write {wanted[1]}  read {wanted[2]}"
    action: Action = "create" if have is None else "update"
    yield Change(action=action, kind="permissions", name=user, vhost=vhost, detail=detail,
                 spec=spec)


def _plan_exchanges(vhost: str, state: BrokerState) -> Iterator[Change]:
    existing = {e.name: e for e in state.exchanges}
    for name in (EXCHANGE, DEAD_LETTER_EXCHANGE):
        have = existing.get(name)
        ok = have is not None and (have.type, have.durable, have.auto_delete, have.internal,
                                   have.arguments) == ("direct", True, False, False, {})
        if ok:
            continue
        if have is not None:
            yield Change(action="delete", kind="exchange", name=name, vhost=vhost,
                         detail=f"is {have.type}, durable={have.durable}: recreated")
        yield Change(action="create", kind="exchange", name=name, vhost=vhost,
                     detail="direct, durable", spec={"type": "direct"})


def _wanted_queues(config: BrokerConfig) -> Iterator[tuple[str, dict[str, Any], str]]:
    limit = config.rabbitmq.delivery_limit
    for agency in config.active_agencies:
        yield (inbox_queue(agency.id), inbox_arguments(agency.id, limit),
               f"quorum, delivery-limit {limit}, dead-letter {DEAD_LETTER_EXCHANGE}")
        yield dead_letter_queue(agency.id), dead_queue_arguments(), "quorum"


def _plan_queues(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    vhost = config.rabbitmq.vhost
    existing = {q.name: q for q in state.queues}
    for name, arguments, detail in _wanted_queues(config):
        have = existing.get(name)
        if have is not None and have.durable and not have.auto_delete \
                and have.arguments == arguments:
            continue
        if have is not None:
            differs = _describe_difference(have, arguments)
            if have.messages != 0:
                yield Change(action="conflict", kind="queue", name=name, vhost=vhost,
                             detail=f"{differs}; holds {_count(have)} messages: left as is")
                continue
            yield Change(action="delete", kind="queue", name=name, vhost=vhost,
                         detail=f"{differs}; empty: recreated")
        yield Change(action="create", kind="queue", name=name, vhost=vhost, detail=detail,
                     spec={"arguments": arguments})


def _count(queue: QueueInfo) -> str:
    return "an unknown number of" if queue.messages is None else str(queue.messages)


def _describe_difference(have: QueueInfo, arguments: dict[str, Any]) -> str:
    if not have.durable or have.auto_delete:
        return "not durable"
    keys = sorted(set(have.arguments) | set(arguments))
    diffs = [f"{k} {have.arguments.get(k)!r} -> {arguments.get(k)!r}"
             for k in keys if have.arguments.get(k) != arguments.get(k)]
    return "arguments differ: " + ", ".join(diffs)


def _wanted_bindings(agencies: Sequence[AgencyEntry]) -> set[tuple[str, str, str]]:
    wanted = set()
    for agency in agencies:
        wanted.add((EXCHANGE, inbox_queue(agency.id), agency.id))
        wanted.add((DEAD_LETTER_EXCHANGE, dead_letter_queue(agency.id), agency.id))
    return wanted


def _plan_bindings(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    vhost = config.rabbitmq.vhost
    wanted = _wanted_bindings(config.active_agencies)
    kept = wanted | _wanted_bindings(config.revoked_agencies)
    have = {(b.source, b.destination, b.routing_key): b for b in state.bindings
            if b.destination_type == "queue" and not b.arguments}
    for key in sorted(wanted - set(have)):
        source, queue, routing_key = key
        yield Change(action="create", kind="binding", name=f"{source} -> {queue}",
                     vhost=vhost, detail=f"key {routing_key}",
                     spec={"exchange": source, "queue": queue, "routing_key": routing_key})
    for b in state.bindings:
        ours = b.source in (EXCHANGE, DEAD_LETTER_EXCHANGE)
        if ours and (b.destination_type != "queue" or b.arguments
                     or (b.source, b.destination, b.routing_key) not in kept):
            yield Change(action="delete", kind="binding", name=f"{b.source} -> {b.destination}",
                         vhost=vhost, detail=f"key {b.routing_key}: not in the config",
                         spec={"exchange": b.source, "queue": b.destination,
                               "destination_type": b.destination_type,
                               "properties_key": b.properties_key})


def _plan_users(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    vhost = config.rabbitmq.vhost
    users = {u.name: u for u in state.users}
    for agency in config.active_agencies:
        have = users.get(agency.broker_user)
        spec = {"password_hash": agency.password_hash}
        if have is None:
            yield Change(action="create", kind="user", name=agency.broker_user, vhost=vhost,
                         detail=f"agency {agency.id}, no tags", spec=spec)
        elif _user_differs(have, agency):
            yield Change(action="update", kind="user", name=agency.broker_user, vhost=vhost,
                         detail=_user_difference(have, agency), spec=spec)
        wanted = agency_permissions(agency.id)
        yield from _permission_change(vhost, agency.broker_user, wanted, state)


def _user_differs(have: UserInfo, agency: AgencyEntry) -> bool:
    return bool(_user_difference(have, agency))


def _user_difference(have: UserInfo, agency: AgencyEntry) -> str:
    parts = []
    if have.password_hash != agency.password_hash or have.hashing_algorithm != HASHING_ALGORITHM:
        parts.append("password changed")
    if have.tags:
        parts.append(f"tags {','.join(have.tags)} removed")
    return ", ".join(parts)


def _plan_revocations(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    vhost = config.rabbitmq.vhost
    users = {u.name for u in state.users}
    for agency in config.revoked_agencies:
        if agency.broker_user in users:
            yield Change(action="delete", kind="user", name=agency.broker_user, vhost=vhost,
                         detail=f"agency {agency.id} revoked")
        for conn in state.connections:
            if conn.user == agency.broker_user:
                yield Change(action="close", kind="connection", name=conn.name, vhost=vhost,
                             detail=f"user {conn.user}, agency {agency.id} revoked")


def _plan_stale_permissions(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    allowed = {config.rabbitmq.admin_user} | {a.broker_user for a in config.active_agencies}
    deleted = {a.broker_user for a in config.revoked_agencies} & {u.name for u in state.users}
    for perm in state.permissions:
        if perm.user not in allowed and perm.user not in deleted:
            yield Change(action="delete", kind="permissions", name=perm.user,
                         vhost=config.rabbitmq.vhost, detail="not an active agency")


def _plan_stale_queues(config: BrokerConfig, state: BrokerState) -> Iterator[Change]:
    owned = set()
    for agency in config.agencies:
        owned |= {inbox_queue(agency.id), dead_letter_queue(agency.id)}
    for queue in state.queues:
        if queue.name in owned or not _MANAGED_QUEUE.match(queue.name):
            continue
        if queue.messages != 0:
            yield Change(action="conflict", kind="queue", name=queue.name,
                         vhost=config.rabbitmq.vhost,
                         detail=f"no agency in the config; holds {_count(queue)} messages: "
                                "kept (mark the agency revoked instead, or drain the queue)")
        else:
            yield Change(action="delete", kind="queue", name=queue.name,
                         vhost=config.rabbitmq.vhost, detail="no agency in the config; empty")


# -- I/O: read and apply --------------------------------------------------------------------


async def read_state(client: ManagementClient, config: BrokerConfig) -> BrokerState:
    """Everything :func:`plan` compares, read through the management API."""
    vhost = config.rabbitmq.vhost
    names = {config.rabbitmq.admin_user} | {a.broker_user for a in config.agencies}
    users = tuple(u for u in await client.list_users() if u.name in names)
    connections = tuple(await client.list_connections())
    version = str((await client.overview()).get("rabbitmq_version", ""))
    if not await client.vhost_exists(vhost):
        return BrokerState(vhost_exists=False, users=users, connections=connections,
                           rabbitmq_version=version)
    return BrokerState(
        vhost_exists=True,
        rabbitmq_version=version,
        exchanges=tuple(await client.list_exchanges(vhost)),
        queues=tuple(await client.list_queues(vhost)),
        bindings=tuple(await client.list_bindings(vhost)),
        users=users,
        permissions=tuple(await client.list_permissions(vhost)),
        connections=connections,
    )


async def apply(client: ManagementClient, changes: Sequence[Change]) -> int:
    """Apply ``changes`` in order (conflicts are skipped); returns how many were applied."""
    applied = 0
    for change in changes:
        if change.action != "conflict":
            await _apply_one(client, change)
            applied += 1
    return applied


async def _apply_one(client: ManagementClient, c: Change) -> None:
    s, vh = c.spec, c.vhost
    match (c.kind, c.action):
        case ("vhost", "create"):
            await client.put_vhost(c.name)
        case ("exchange", "create"):
            await client.put_exchange(vh, c.name, s["type"])
        case ("exchange", "delete"):
            await client.delete_exchange(vh, c.name)
        case ("queue", "create"):
            await client.put_queue(vh, c.name, arguments=s["arguments"])
        case ("queue", "delete"):
            await _delete_if_empty(client, vh, c.name)
        case ("binding", "create"):
            await client.put_binding(vh, s["exchange"], s["queue"], s["routing_key"])
        case ("binding", "delete"):
            await client.delete_binding(vh, s["exchange"], s["queue"], s["properties_key"],
                                        destination_type=s["destination_type"])
        case ("user", "create" | "update"):
            await client.put_user(c.name, password_hash=s["password_hash"])
        case ("user", "delete"):
            await client.delete_user(c.name)
        case ("permissions", "create" | "update"):
            await client.put_permissions(vh, c.name, **s)
        case ("permissions", "delete"):
            await client.delete_permissions(vh, c.name)
        case ("connection", "close"):
            await client.close_connection(c.name, reason="ISA Relay: agency revoked")
        case _:
            raise ValueError(f"cannot apply {c.line()}")


async def _delete_if_empty(client: ManagementClient, vhost: str, name: str) -> None:
    """Delete a queue only if it is empty (rule 6).

    Quorum queues refuse ``if-empty`` deletes in RabbitMQ 3.10, so the count is read again just
    before the delete; a queue without statistics yet counts as not empty.
    """
    queue = await client.get_queue(vhost, name)
    if queue is None:
        return
    if queue.messages != 0:
        raise BrokerApiError(
            f"queue {name} in vhost {vhost} holds {_count(queue)} messages: not deleted")
    quorum = queue.arguments.get("x-queue-type") == "quorum"
    await client.delete_queue(vhost, name, if_empty=not quorum)
