"""An in-memory stand-in for what the management API would do with a plan (pure unit tests).

It applies :class:`broker.provision.Change` values to a :class:`BrokerState` the way RabbitMQ
would: deleting a user drops its permissions, a queue delete with if-empty refuses a queue that
holds messages, a binding's properties key is its routing key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broker.provision import HASHING_ALGORITHM, BrokerState, Change
from broker.rabbitmq import BindingInfo, ExchangeInfo, PermissionInfo, QueueInfo, UserInfo

__all__ = ["QueueNotEmpty", "apply_to_state"]


class QueueNotEmpty(Exception):
    """The fake broker refused an if-empty delete."""


def apply_to_state(state: BrokerState, changes: Sequence[Change]) -> BrokerState:
    for change in changes:
        if change.action != "conflict":
            state = _apply(state, change)
    return state


def _apply(s: BrokerState, c: Change) -> BrokerState:
    spec = c.spec
    match (c.kind, c.action):
        case ("vhost", "create"):
            return s.model_copy(update={"vhost_exists": True})
        case ("exchange", "create"):
            ex = ExchangeInfo(name=c.name, type=spec["type"], durable=True)
            return s.model_copy(update={"exchanges": (*_drop(s.exchanges, c.name), ex)})
        case ("exchange", "delete"):
            return s.model_copy(update={"exchanges": _drop(s.exchanges, c.name)})
        case ("queue", "create"):
            q = QueueInfo(name=c.name, durable=True, arguments=spec["arguments"], messages=0)
            return s.model_copy(update={"queues": (*s.queues, q)})
        case ("queue", "delete"):
            if any(q.name == c.name and q.messages for q in s.queues):
                raise QueueNotEmpty(c.name)
            return s.model_copy(update={"queues": _drop(s.queues, c.name)})
        case ("binding", "create"):
            b = BindingInfo(source=spec["exchange"], destination=spec["queue"],
                            destination_type="queue", routing_key=spec["routing_key"],
                            properties_key=spec["routing_key"])
            return s.model_copy(update={"bindings": (*s.bindings, b)})
        case ("binding", "delete"):
            kept = tuple(b for b in s.bindings if (b.source, b.destination, b.properties_key)
                         != (spec["exchange"], spec["queue"], spec["properties_key"]))
            return s.model_copy(update={"bindings": kept})
        case ("user", "create" | "update"):
            u = UserInfo(name=c.name, password_hash=spec["password_hash"],
                         hashing_algorithm=HASHING_ALGORITHM)
            return s.model_copy(update={"users": (*_drop(s.users, c.name), u)})
        case ("user", "delete"):
            perms = tuple(p for p in s.permissions if p.user != c.name)
            return s.model_copy(update={"users": _drop(s.users, c.name), "permissions": perms})
        case ("permissions", "create" | "update"):
            p = PermissionInfo(user=c.name, vhost=c.vhost, **spec)
            others = tuple(x for x in s.permissions if x.user != c.name)
            return s.model_copy(update={"permissions": (*others, p)})
        case ("permissions", "delete"):
            others = tuple(x for x in s.permissions if x.user != c.name)
            return s.model_copy(update={"permissions": others})
        case ("connection", "close"):
            return s.model_copy(update={"connections": _drop(s.connections, c.name)})
    raise AssertionError(f"the fake cannot apply {c.line()}")


def _drop(items: tuple[Any, ...], name: str) -> tuple[Any, ...]:
    return tuple(i for i in items if getattr(i, "name", None) != name)
