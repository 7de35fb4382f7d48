"""Subject keys: keyed hashes of the people a referral is about, for subject-access search.

This module performs no I/O and reads no clock.

Rules:
1. The people in a payload are found through the field catalogue: every object holding a
   ``name`` field whose subject roles include someone other than a practitioner (victim,
   perpetrator, child, third party). Practitioners are staff, not data subjects of the referral.
2. A person's identifier is their name normalised (Unicode NFKC, case-folded, whitespace
   collapsed, trimmed) and, when the payload holds a full ``YYYY-MM-DD`` date of birth beside
   it, that date: ``"name:<name>|dob:<date>"``; otherwise ``"name:<name>"`` (a minimised copy
   may carry an age band instead of the date).
3. A subject key is ``HMAC-SHA256(subject_key_secret, identifier)`` in hex. The audit log stores
   only these keys; without the agency's 32-byte secret they reveal nothing and cannot be
   compared across agencies.
4. A search for a name and date of birth matches both the full key and the name-only key, so a
   message whose copy carried no date of birth is still found (flagged as a name-only match).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from federation.referrals.catalogue import SubjectRole, catalogue
from federation.referrals.models import MESSAGE_TYPES

__all__ = [
    "SECRET_BYTES",
    "SearchKeys",
    "identifier",
    "normalise_name",
    "person_prefixes",
    "search_keys",
    "subject_key",
    "subject_keys",
]

SECRET_BYTES = 32
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_SPACE = re.compile(r"\s+")
_SUBJECT_ROLES = frozenset(SubjectRole) - {SubjectRole.PRACTITIONER}


def normalise_name(name: str) -> str:
    """NFKC, case-folded, inner whitespace collapsed to one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


def identifier(name: str, date_of_birth: str | None) -> str:
    """The identifier of rule 2 (the date only if it is a full ``YYYY-MM-DD``)."""
    return _identifier(normalise_name(name), date_of_birth)


def _identifier(normalised: str, date_of_birth: str | None) -> str:
    text = f"name:{normalised}"
    if date_of_birth is not None and _DATE.match(date_of_birth):
        text += f"|dob:{date_of_birth}"
    return text


def subject_key(secret: bytes, ident: str) -> str:
    """``HMAC-SHA256(secret, identifier)`` as hex (rule 3)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError("the subject key secret is 32 bytes")
    return hmac.new(secret, ident.encode("utf-8"), hashlib.sha256).hexdigest()


@cache
def person_prefixes(message_type: str) -> tuple[str, ...]:
    """Catalogue prefixes of the people in ``message_type`` (e.g. ``victim.``, ``children[].``)."""
    if message_type not in MESSAGE_TYPES:
        return ()
    found = []
    for path, info in catalogue(message_type).items():
        if (path == "name" or path.endswith(".name")) and info.subject_roles & _SUBJECT_ROLES:
            found.append(path[: -len("name")])
    return tuple(sorted(found))


def _objects_at(node: Any, parts: list[str]) -> Iterator[Mapping[str, Any]]:
    if not parts:
        if isinstance(node, Mapping):
            yield node
        return
    head, rest = parts[0], parts[1:]
    if not isinstance(node, Mapping):
        return
    if head.endswith("[]"):
        items = node.get(head[:-2])
        for item in items if isinstance(items, list) else []:
            yield from _objects_at(item, rest)
    else:
        yield from _objects_at(node.get(head), rest)


@cache
def _person_paths(message_type: str) -> tuple[list[str], ...]:
    return tuple([p for p in prefix.split(".") if p] for prefix in person_prefixes(message_type))


def _people(message_type: str, payload: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(normalised name, date of birth or None) of each person in ``payload``."""
    for parts in _person_paths(message_type):
        for person in _objects_at(payload, parts):
            name, dob = person.get("name"), person.get("date_of_birth")
            if isinstance(name, str) and (normalised := normalise_name(name)):
                yield normalised, dob if isinstance(dob, str) else None


def subject_keys(secret: bytes, message_type: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The sorted, distinct subject keys of every person in ``payload`` (rules 1-3)."""
    people = _people(message_type, payload)
    return tuple(sorted({subject_key(secret, _identifier(n, d)) for n, d in people}))


@dataclass(frozen=True, slots=True)
class SearchKeys:
    """What a subject-access search looks for: the full key and the name-only key."""

    full: str | None
    name_only: str

    def all(self) -> tuple[str, ...]:
        return (self.name_only,) if self.full is None else (self.full, self.name_only)


def search_keys(secret: bytes, name: str, date_of_birth: str | None) -> SearchKeys:
    """The keys a search for this person matches (rule 4)."""
    if not normalise_name(name):
        raise ValueError("a subject name is required")
    if date_of_birth is not None and not _DATE.match(date_of_birth):
        raise ValueError("the date of birth must be YYYY-MM-DD")
    full = None if date_of_birth is None else subject_key(secret, identifier(name, date_of_birth))
    return SearchKeys(full, subject_key(secret, identifier(name, None)))
