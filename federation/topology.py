"""RabbitMQ names every agent and the provisioning agree on (see docs/protocol.md).

This module performs no I/O. Routing metadata carries agency ids and opaque ids only, never
personal data.

- one vhost (default ``isa-relay``);
- one durable **direct** exchange ``isa.messages``; the routing key is the recipient agency id;
- one durable **quorum** queue per agency, ``isa.inbox.<agency>``, bound with routing key
  ``<agency>``, dead-lettering (at-least-once) to the ``isa.dead`` exchange after
  ``delivery_limit`` deliveries;
- ``isa.dead`` is a durable direct exchange; ``isa.dead.<agency>`` holds an agency's poison
  messages for the operator;
- AMQP ``type`` says what the body is: ``envelope`` or ``receipt``; ``message_id`` is the
  envelope id; ``user_id`` is the sending agency's broker user (RabbitMQ validates it).
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "AGENCY_ID_PATTERN",
    "DEAD_LETTER_EXCHANGE",
    "DEFAULT_DELIVERY_LIMIT",
    "DEFAULT_VHOST",
    "EXCHANGE",
    "BodyKind",
    "dead_letter_queue",
    "inbox_queue",
    "is_agency_id",
]

DEFAULT_VHOST: Final = "isa-relay"
EXCHANGE: Final = "isa.messages"
DEAD_LETTER_EXCHANGE: Final = "isa.dead"
#: High on purpose: the agent dead-letters a genuinely poison message at once (REJECT), so this
#: limit only ever counts redeliveries after crashes, restarts and transient failures, and
#: RabbitMQ 3.10 counts a delivery returned by a closed channel too (tests/faults found that a
#: recipient restarted 5 times during a full disk lost its prefetch to isa.dead with a limit of 5).
DEFAULT_DELIVERY_LIMIT: Final = 100

#: Agency ids are lowercase slugs: they appear in queue names, user names and routing keys.
AGENCY_ID_PATTERN: Final = re.compile(r"^[a-z][a-z0-9-]{1,62}$")

BodyKind = Literal["envelope", "receipt"]


def is_agency_id(value: str) -> bool:
    return bool(AGENCY_ID_PATTERN.fullmatch(value))


def _checked(agency: str) -> str:
    if not is_agency_id(agency):
        raise ValueError(f"not a valid agency id: {agency!r}")
    return agency


def inbox_queue(agency: str) -> str:
    """The quorum queue an agency consumes from."""
    return f"isa.inbox.{_checked(agency)}"


def dead_letter_queue(agency: str) -> str:
    """Where an agency's poison messages end up."""
    return f"isa.dead.{_checked(agency)}"
