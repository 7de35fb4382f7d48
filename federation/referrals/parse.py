"""Parse and check a referral payload; turn a referral back into JSON-ready data.

This module performs no I/O.

Rules:
1. ``parse_payload`` validates JSON (bytes, or a mapping such as ``json.loads`` returns) in
   pydantic's strict JSON mode: ISO date strings are dates; ``"1"`` is not an int.
2. Every failure is one ``PayloadInvalid`` whose ``errors`` map a field path
   (``children[0].date_of_birth``) to a message: unknown type, unknown field, wrong type,
   inconsistent DASH, missing ``REQUIRED_ON_SUBMIT`` field. Values never appear in messages.
3. ``minimised=False`` (a sender's full payload): generalised values are refused and
   ``REQUIRED_ON_SUBMIT`` paths must be present. ``minimised=True`` (a recipient's copy): any
   field may be absent and generalised values are accepted where the catalogue allows them.
4. ``payload_dict`` is the inverse: JSON-ready, ``None`` fields left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from federation.errors import PayloadInvalid
from federation.referrals.common import Referral
from federation.referrals.dash import DASH_QUESTIONS
from federation.referrals.models import MESSAGE_TYPES
from federation.referrals.paths import submodel

__all__ = ["REQUIRED_ON_SUBMIT", "parse_payload", "payload_dict"]

_DASH_ANSWERS = tuple(f"dash.{q}.answer" for q in DASH_QUESTIONS)

REQUIRED_ON_SUBMIT: Mapping[str, tuple[str, ...]] = {
    "marac_referral": (
        "referral_date", "referring_agency", "referrer.name", "referrer.email", "victim.name",
        "victim.date_of_birth", "victim.postcode", "perpetrators", "perpetrators[].name",
        "reason_for_referral", "consent.victim_aware", "consent.agreement", "dash.assessed_at",
        *_DASH_ANSWERS,
    ),
    "dash_risk_assessment": (
        "victim.name", "dash.assessed_at", "dash.assessor_org", "consent.victim_aware",
        *_DASH_ANSWERS,
    ),
    "police_concern": (
        "report_id", "report_type", "incident_ref", "occurred_at", "officer.name", "victim.name",
        "narrative", "risk_assessment.level", "views.sought",
    ),
    "support_referral": (
        "referral_date", "referral_source", "client.name", "consent.victim_aware",
        "consent.agreement", "risk.level", "services_requested",
    ),
    "caledonian_partner_contact": (
        "referral_date", "court_order.order_type", "mens_worker.name", "man.name",
        "partner.name", "assessed_risk.level",
    ),
}
"""Paths a sender must supply. ``a[].b`` means "every element of ``a`` has ``b``"."""

_REQUIRED_PARTS = {
    kind: tuple(tuple(path.split(".")) for path in paths)
    for kind, paths in REQUIRED_ON_SUBMIT.items()
}


def parse_payload(
    message_type: str, payload: bytes | Mapping[str, Any], *, minimised: bool = False
) -> Referral:
    """Validate ``payload`` as ``message_type``; raise ``PayloadInvalid`` with field paths."""
    model = MESSAGE_TYPES.get(message_type)
    if model is None:
        raise PayloadInvalid(f"unknown message type {message_type!r}", {"type": "unknown type"})
    raw = payload if isinstance(payload, bytes) else _to_json(payload)
    try:
        referral = model.model_validate_json(raw, context={"minimised": minimised})
    except ValidationError as exc:
        raise PayloadInvalid(
            f"{message_type} payload invalid", _field_errors(model, exc.errors())
        ) from None
    if not minimised:
        problems = _submit_problems(message_type, referral)
        if problems:
            raise PayloadInvalid(f"{message_type} payload incomplete", problems)
    return referral


def payload_dict(referral: Referral) -> dict[str, Any]:
    """The referral as JSON-ready data without ``None`` fields (the minimiser's input)."""
    return referral.model_dump(mode="json", exclude_none=True)


def _to_json(payload: Mapping[str, Any]) -> bytes:
    if not isinstance(payload, Mapping):
        raise PayloadInvalid("payload must be a JSON object", {"payload": "not an object"})
    try:
        return json.dumps(payload, default=_iso, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        raise PayloadInvalid(
            "payload is not JSON data", {"payload": "holds a value JSON cannot carry"}
        ) from None


def _iso(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError("not JSON")


def _field_errors(model: type[BaseModel], errors: list[ErrorDetails]) -> dict[str, str]:
    found: dict[str, str] = {}
    for err in errors:
        path = _error_path(model, err) or "payload"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        found[path] = f"{found[path]}; {message}" if path in found else message
    return found


def _error_path(model: type[BaseModel], err: ErrorDetails) -> str:
    """The field path of a pydantic error, without pydantic's union-member tags."""
    path, current = "", model
    loc = err["loc"]
    for i, item in enumerate(loc):
        if isinstance(item, int):
            path += f"[{item}]"
        elif current is not None and item in current.model_fields:
            path += f".{item}" if path else item
            found = submodel(current.model_fields[item].annotation)
            current = found[0] if found else None  # type: ignore[assignment]
        elif err["type"] == "extra_forbidden" and i == len(loc) - 1:
            path += f".{item}" if path else str(item)
    field = (err.get("ctx") or {}).get("field")
    if isinstance(field, str):
        path += f".{field}" if path else field
    return path


def _submit_problems(message_type: str, referral: Referral) -> dict[str, str]:
    problems = {
        missing: "required when submitting"
        for parts in _REQUIRED_PARTS[message_type]
        for missing in _missing(referral, parts, "")
    }
    consent = referral.consent
    if consent and consent.agreement == "not_sought" and consent.reason_not_sought is None:
        problems["consent.reason_not_sought"] = "required when agreement was not sought"
    return problems


def _missing(node: object, parts: tuple[str, ...], at: str) -> list[str]:
    """The concrete paths under ``node`` where ``parts`` leads to nothing."""
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    here = f"{at}.{name}" if at else name
    child = getattr(node, name, None)
    if head.endswith("[]"):
        items: tuple[object, ...] = child or ()
        return [m for i, item in enumerate(items) for m in _missing(item, rest, f"{here}[{i}]")]
    if child is None or (isinstance(child, tuple) and not child):
        return [".".join([here, *rest])]
    return _missing(child, rest, here) if rest else []
