"""Who acts through the local API, and why: the ``X-Actor-*`` headers a case system asserts.

The agent authenticates the case system (``agent.auth``); the case system, which has logged its
user in, asserts who that person is, the role they act in and why. The agent copies that into
every audit entry the call causes (DPA 2018 s62: who consulted or disclosed, and why).

Rules:
1. Three headers, each given at most once (:data:`ACTOR_HEADERS`):
   - ``X-Actor-Id``: the person's STAFF IDENTIFIER (a payroll number, a directory object id),
     1-64 of ``A-Z a-z 0-9 . _ -`` starting with a letter or digit. Never a name or an e-mail
     address: a space, ``@`` or ``:`` is refused (``system:`` ids are the agent's own, rule 3).
   - ``X-Actor-Role``: the role they act in, 1-40 of ``a-z 0-9 _ -`` starting with a letter
     (``idva``, ``case_worker``, ``marac_coordinator``, ``dpo``).
   - ``X-Actor-Justification``: why, 1-500 printable ASCII characters, not starting or ending
     with a space. By reference (a statutory gateway, the purpose, the case system's own case
     reference), never a name, date of birth or address: it is copied into the audit log, which
     is exported to reviewers and the ICO.
2. Id and role come together or not at all; a justification needs them both.
3. A call that names nobody acts as the system: :meth:`Actor.system` (id ``system:<client>``,
   role ``system``). Whether that is allowed is the API's policy (``[api] require_actor``,
   ``agent.api``) and the flow's (``log: dpa2018_s62``, ``agent.service``), not this module's.
4. A malformed header is :class:`~agent.errors.ActorInvalid` (400) naming the header, never
   echoing its value.
5. This module performs no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from agent.errors import ActorInvalid, ActorRequired, JustificationRequired

__all__ = [
    "ACTOR_HEADERS",
    "ACTOR_ID_HEADER",
    "ACTOR_ID_PATTERN",
    "ACTOR_ROLE_HEADER",
    "ACTOR_ROLE_PATTERN",
    "JUSTIFICATION_HEADER",
    "JUSTIFICATION_PATTERN",
    "MAX_JUSTIFICATION",
    "SYSTEM_ROLE",
    "Actor",
    "Caller",
    "actor_headers",
    "parse_actor",
    "require_accountable",
    "require_person",
]

ACTOR_ID_HEADER: Final = "X-Actor-Id"
ACTOR_ROLE_HEADER: Final = "X-Actor-Role"
JUSTIFICATION_HEADER: Final = "X-Actor-Justification"
ACTOR_HEADERS: Final = (ACTOR_ID_HEADER, ACTOR_ROLE_HEADER, JUSTIFICATION_HEADER)

ACTOR_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ACTOR_ROLE_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,39}$"
MAX_JUSTIFICATION: Final = 500
JUSTIFICATION_PATTERN: Final = r"^[!-~]([ -~]{0,498}[!-~])?$"
SYSTEM_ROLE: Final = "system"
_SYSTEM_PREFIX: Final = "system:"
_RULES: Final = {
    ACTOR_ID_HEADER: (
        re.compile(ACTOR_ID_PATTERN),
        "a staff identifier: 1-64 of A-Z a-z 0-9 . _ - (no name, no e-mail address)",
    ),
    ACTOR_ROLE_HEADER: (re.compile(ACTOR_ROLE_PATTERN), "a role code: 1-40 of a-z 0-9 _ -"),
    JUSTIFICATION_HEADER: (
        re.compile(JUSTIFICATION_PATTERN),
        f"1-{MAX_JUSTIFICATION} printable ASCII characters (no personal data)",
    ),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """The person accountable for a call (or the system, rule 3), and their justification."""

    id: str
    role: str
    justification: str | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        """Rule 3: the system ``name`` (an API client, ``agent``, ``cli``) acting for nobody."""
        return cls(_SYSTEM_PREFIX + name, SYSTEM_ROLE)

    @property
    def is_person(self) -> bool:
        """False for :meth:`system` actors: nobody was named."""
        return not self.id.startswith(_SYSTEM_PREFIX)


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated API client (the case system) and the person it acts for."""

    client: str
    actor: Actor

    @classmethod
    def system(cls, client: str) -> Caller:
        """``client`` acting for nobody (rule 3)."""
        return cls(client, Actor.system(client))


def parse_actor(headers: Mapping[str, Sequence[str]]) -> Actor | None:
    """Rules 1, 2 and 4: the actor ``headers`` (every value of each ``X-Actor-*`` header)
    name, or None when they name nobody. Raises ``ActorInvalid``."""
    values = {name: _one(headers, name) for name in ACTOR_HEADERS}
    actor_id, role, justification = (values[name] for name in ACTOR_HEADERS)
    if actor_id is None and role is None:
        if justification is not None:
            raise ActorInvalid(
                f"{JUSTIFICATION_HEADER} needs {ACTOR_ID_HEADER} and {ACTOR_ROLE_HEADER}"
            )
        return None
    if actor_id is None or role is None:
        missing = ACTOR_ID_HEADER if actor_id is None else ACTOR_ROLE_HEADER
        raise ActorInvalid(f"{ACTOR_ID_HEADER} and {ACTOR_ROLE_HEADER} go together: {missing} "
                           "is missing")  # fmt: skip
    return Actor(actor_id, role, justification)


def _one(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    given = headers.get(name, ())
    if not given:
        return None
    if len(given) > 1:
        raise ActorInvalid(f"{name} is given more than once")
    pattern, shape = _RULES[name]
    if not pattern.fullmatch(given[0]):
        raise ActorInvalid(f"{name} must be {shape}")
    return given[0]


def actor_headers(actor_id: str, role: str, justification: str | None = None) -> dict[str, str]:
    """The headers a case system (or a test, or a dev tool) sends to name its user."""
    headers = {ACTOR_ID_HEADER: actor_id, ACTOR_ROLE_HEADER: role}
    if justification is not None:
        headers[JUSTIFICATION_HEADER] = justification
    return headers


def require_person(actor: Actor, why: str) -> None:
    """Raise ``ActorRequired`` naming the headers unless ``actor`` is a person; ``why`` says
    what asks for one (a setting, an ISA's flow)."""
    if not actor.is_person:
        raise ActorRequired(
            f"{why}: name the person acting ({ACTOR_ID_HEADER} and {ACTOR_ROLE_HEADER})"
        )


def require_accountable(actor: Actor, why: str) -> None:
    """:func:`require_person`, and ``JustificationRequired`` without a justification."""
    require_person(actor, why)
    if actor.justification is None:
        raise JustificationRequired(f"{why}: say why ({JUSTIFICATION_HEADER})")
