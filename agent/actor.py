"""The person acting through an API client, as the case system asserts them in request headers.

Rules:
1. The bearer token names a client, a system (``agent.auth``). The person using it is named by
   the case system, which authenticated them: ``X-Actor-Id`` (a staff identifier, never a name
   or an e-mail address: 1-64 of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit),
   ``X-Actor-Role`` (a role, as the ISAs' review rules name them: 1-40 of ``a-z 0-9 _ -``,
   starting with a letter) and ``X-Actor-Justification`` (why they act: 1-500 printable ASCII
   characters, by reference, never personal data; a request body's ``justification`` takes
   precedence). The names and forms are those of the general actor headers (issue 18).
2. The headers are optional; an operation that needs a person says so (a referral held for
   review needs its submitter; a review action needs its reviewer): ``ActorRequired`` (422).
   A value out of its form is a 400 naming the header, never echoing it; a role or a
   justification without an id is ``ActorRequired``: it asserts nobody.
3. The agent records what is asserted, with the client that asserted it
   (:meth:`Actor.label`: ``client/person``), so every audit entry about a person's act is
   attributable to the client vouching for them. A value never appears in a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from agent.api_models import RequestInvalid
from agent.errors import ActorRequired

__all__ = [
    "ACTOR_HEADERS",
    "ACTOR_ID_HEADER",
    "ACTOR_ID_PATTERN",
    "ACTOR_ROLE_HEADER",
    "ACTOR_ROLE_PATTERN",
    "JUSTIFICATION_HEADER",
    "JUSTIFICATION_PATTERN",
    "Actor",
    "actor_from_headers",
]

ACTOR_ID_HEADER: Final = "X-Actor-Id"
ACTOR_ROLE_HEADER: Final = "X-Actor-Role"
JUSTIFICATION_HEADER: Final = "X-Actor-Justification"
ACTOR_HEADERS: Final = (ACTOR_ID_HEADER, ACTOR_ROLE_HEADER, JUSTIFICATION_HEADER)

ACTOR_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ACTOR_ROLE_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,39}$"
JUSTIFICATION_PATTERN: Final = r"^[!-~]([ -~]{0,498}[!-~])?$"
_ID: Final = re.compile(ACTOR_ID_PATTERN)
_ROLE: Final = re.compile(ACTOR_ROLE_PATTERN)
_TEXT: Final = re.compile(JUSTIFICATION_PATTERN)


@dataclass(frozen=True, slots=True)
class Actor:
    """A person, as asserted: their id, their role (if given) and why they act (if given)."""

    id: str
    role: str | None = None
    justification: str | None = None

    def label(self, client: str) -> str:
        """Rule 3: who acted, as the audit log names them: ``client/person``."""
        return f"{client}/{self.id}"

    def because(self, justification: str | None) -> Actor:
        """This actor with ``justification`` (a body field) in place of the header's."""
        if justification is None:
            return self
        return Actor(self.id, self.role, justification)


def actor_from_headers(headers: Mapping[str, str]) -> Actor | None:
    """Rules 1-2: the asserted person, None when no actor header is sent."""
    person, role, why = (headers.get(name) for name in ACTOR_HEADERS)
    why = (why or "").strip() or None
    errors: dict[str, str] = {}
    if person is not None and not _ID.fullmatch(person):
        errors[ACTOR_ID_HEADER] = "a staff identifier: 1-64 of A-Z a-z 0-9 . _ - (no name)"
    if role is not None and not _ROLE.fullmatch(role):
        errors[ACTOR_ROLE_HEADER] = "a role code: 1-40 of a-z 0-9 _ -, starting with a letter"
    if why is not None and not _TEXT.fullmatch(why):
        errors[JUSTIFICATION_HEADER] = "1-500 printable ASCII characters (no personal data)"
    if errors:
        raise RequestInvalid("bad actor headers", errors)
    if person is None and (role is not None or why is not None):
        raise ActorRequired(
            f"{ACTOR_ROLE_HEADER} and {JUSTIFICATION_HEADER} need {ACTOR_ID_HEADER}: "
            "name the person acting"
        )
    return None if person is None else Actor(person, role, why)
