"""Leaf paths of a referral model, and the generalising transforms each leaf accepts.

This module performs no I/O.

Rules:
1. A leaf is a field whose type is not a model: a scalar, a date, an enum, or a list of those.
2. A nested model adds ``name.``; a list of models adds ``name[].`` (``children[].name``).
3. A leaf's transforms are the ``Generalisable`` markers on its type (``age_band``, ``year``,
   ``postcode_district``); ``keep`` and ``drop`` apply to every leaf and are not listed.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from federation.referrals.common import Generalisable

__all__ = ["leaf_fields", "submodel"]


def leaf_fields(model: type[BaseModel], prefix: str = "") -> dict[str, frozenset[str]]:
    """Every leaf path of ``model`` mapped to the generalising transforms it accepts."""
    leaves: dict[str, frozenset[str]] = {}
    for name, info in model.model_fields.items():
        path = prefix + name
        found = submodel(info.annotation)
        if found is None:
            leaves[path] = _transforms(info.annotation) | _marker_transforms(info.metadata)
            continue
        child, is_list = found
        leaves.update(leaf_fields(child, path + ("[]." if is_list else ".")))
    return leaves


def submodel(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds (and whether it is a list of them), or None for a leaf."""
    for arg in _members(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
        if get_origin(arg) in (tuple, list):
            inner = [a for a in get_args(arg) if a is not Ellipsis]
            if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
                return inner[0], True
    return None


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (or the annotation itself), with Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    return [annotation]


def _transforms(annotation: Any) -> frozenset[str]:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return frozenset().union(*(_transforms(arg) for arg in get_args(annotation)))
    if origin is Annotated:
        return _marker_transforms(annotation.__metadata__)
    return frozenset()


def _marker_transforms(metadata: Any) -> frozenset[str]:
    return frozenset(m.transform for m in metadata if isinstance(m, Generalisable))
