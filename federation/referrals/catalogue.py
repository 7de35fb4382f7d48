"""The field catalogue: for every leaf path of every message type, whose data it is, how
sensitive it is, how it must be handled and which generalising transforms apply.

This module performs no I/O. The ISA engine, the minimiser, ``policy explain`` and the agent
rely on these names; keep them stable.

Rules:
1. ``catalogue(t)`` has an entry for every leaf path of type ``t`` and no other (a test walks
   each model to prove it). Lists of objects are written ``children[].date_of_birth``.
2. Handling labels are strings: ``never_share`` (no flow may release it, e.g. the refuge
   address), ``must_not_disclose_to:perpetrator`` (victim location and safe contact),
   ``originator_control`` (e.g. perpetrator criminal history).
3. ``transforms`` lists the generalising transforms (``age_band``, ``postcode_district``,
   ``year``) the field's type accepts in a minimised payload; ``keep`` and ``drop`` apply to
   every field. ``TRANSFORMS`` is the whole vocabulary.
4. Dual-subject fields list every role (DASH q15: victim and perpetrator, special category and
   criminal offence). Administrative fields have no subject and no data class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from federation.errors import PayloadInvalid
from federation.referrals.kinds import TRANSFORMS, DataClass, SubjectRole
from federation.referrals.models import MESSAGE_TYPES
from federation.referrals.paths import leaf_fields
from federation.referrals.tables import TABLES

__all__ = ["TRANSFORMS", "DataClass", "FieldInfo", "SubjectRole", "catalogue"]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the federation knows about one leaf field of a message type."""

    path: str
    subject_roles: frozenset[SubjectRole]
    data_classes: frozenset[DataClass]
    handling: frozenset[str]
    transforms: frozenset[str]
    description: str


def catalogue(message_type: str) -> Mapping[str, FieldInfo]:
    """Every leaf path of ``message_type`` with its labels (read-only)."""
    if message_type not in TABLES:
        raise PayloadInvalid(
            f"unknown message type {message_type!r}", {"type": "unknown message type"}
        )
    return _build(message_type)


@cache
def _build(message_type: str) -> Mapping[str, FieldInfo]:
    transforms = leaf_fields(MESSAGE_TYPES[message_type])
    entries = {
        path: FieldInfo(
            path=path,
            subject_roles=label.roles or frozenset(),
            data_classes=label.data_classes,
            handling=label.handling,
            transforms=transforms.get(path, frozenset()),
            description=label.description,
        )
        for path, label in TABLES[message_type].items()
    }
    return MappingProxyType(entries)
