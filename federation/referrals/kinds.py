"""The vocabularies of the field catalogue: data-subject roles and data classes.

This module performs no I/O. ``federation.referrals.catalogue`` re-exports both enums; the ISA
engine and the agent import them from there.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TRANSFORMS", "DataClass", "SubjectRole"]


class SubjectRole(StrEnum):
    """Whose personal data a field is."""

    VICTIM = "victim"
    PERPETRATOR = "perpetrator"
    CHILD = "child"
    THIRD_PARTY = "third_party"
    PRACTITIONER = "practitioner"


class DataClass(StrEnum):
    """How sensitive a field is in law (UK GDPR Art 9, Art 10) and in practice."""

    PERSONAL = "personal"
    SPECIAL_CATEGORY = "special_category"
    CRIMINAL_OFFENCE = "criminal_offence"
    SENSITIVE_LOCATION = "sensitive_location"
    CHILD = "child"


TRANSFORMS: tuple[str, ...] = ("keep", "drop", "age_band", "postcode_district", "year")
"""Every transform an ISA may name; a field's ``FieldInfo.transforms`` lists the generalising
ones (not ``keep``/``drop``, which apply to every field) that its type accepts."""
