"""How the ISA engine sees the referral catalogue: field paths, their labels and path patterns.

This module performs no I/O.

Rules:
1. The catalogue is a parameter (``Catalogue = Callable[[str], Mapping[str, FieldInfo]]``); the
   default is :func:`federation.referrals.catalogue`, imported lazily so that tests can supply a
   fake one.
2. A catalogue path is a leaf: ``victim.date_of_birth``; items of a list of objects are
   ``children[].date_of_birth``.
3. In a pattern, ``*`` matches any run of characters (dots included); nothing else is special.
4. Labels (data classes, handling, transforms) are compared as plain strings, whether the
   catalogue gives them as ``str`` or as string enums.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

__all__ = [
    "Catalogue",
    "FieldInfoLike",
    "FieldLabels",
    "default_catalogue",
    "field_labels",
    "is_pattern",
    "match_paths",
    "pattern_regex",
]


class FieldInfoLike(Protocol):
    """What the engine reads from a catalogue entry (``federation.referrals.FieldInfo``)."""

    @property
    def path(self) -> str: ...
    @property
    def data_classes(self) -> Any: ...
    @property
    def handling(self) -> Any: ...
    @property
    def transforms(self) -> Any: ...


Catalogue = Callable[[str], Mapping[str, Any]]


def default_catalogue(message_type: str) -> Mapping[str, Any]:
    """The real referral catalogue (``federation.referrals.catalogue``)."""
    from federation import referrals  # lazy: the engine must not depend on it at import

    result: Mapping[str, Any] = referrals.catalogue(message_type)
    return result


@dataclass(frozen=True, slots=True)
class FieldLabels:
    """A catalogue entry reduced to plain strings."""

    path: str
    data_classes: frozenset[str]
    handling: frozenset[str]
    transforms: frozenset[str]
    description: str = ""
    subject_roles: frozenset[str] = frozenset()

    @property
    def special_category(self) -> bool:
        return "special_category" in self.data_classes

    @property
    def criminal_offence(self) -> bool:
        return "criminal_offence" in self.data_classes

    @property
    def never_share(self) -> bool:
        return "never_share" in self.handling


def _strings(values: Iterable[Any] | None) -> frozenset[str]:
    return frozenset(str(getattr(v, "value", v)) for v in (values or ()))


def field_labels(path: str, info: Any) -> FieldLabels:
    """Normalise one catalogue entry."""
    return FieldLabels(
        path=path,
        data_classes=_strings(getattr(info, "data_classes", ())),
        handling=_strings(getattr(info, "handling", ())),
        transforms=_strings(getattr(info, "transforms", ())),
        description=str(getattr(info, "description", "") or ""),
        subject_roles=_strings(getattr(info, "subject_roles", ())),
    )


def is_pattern(text: str) -> bool:
    return "*" in text


@lru_cache(maxsize=4096)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a field pattern: ``*`` is any run of characters, all else literal."""
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$")


def match_paths(pattern: str, paths: Iterable[str]) -> list[str]:
    """The catalogue paths a pattern names (an exact path names only itself)."""
    if not is_pattern(pattern):
        return [p for p in paths if p == pattern]
    regex = pattern_regex(pattern)
    return [p for p in paths if regex.match(p)]
