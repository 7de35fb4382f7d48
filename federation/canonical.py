"""Canonical JSON, base64url and timestamps, exactly as docs/protocol.md specifies.

This module performs no I/O.

Rules:
1. Canonical JSON is ``json.dumps(obj, sort_keys=True, separators=(",", ":"),
   ensure_ascii=False).encode("utf-8")``.
2. A receiver re-encodes what it parsed and rejects bytes that differ (``parse_canonical``).
3. Binary values are base64url without padding; times are UTC ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "NotCanonical",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "format_time",
    "parse_canonical",
    "parse_time",
]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class NotCanonical(ValueError):
    """Bytes that are not the canonical encoding of the JSON they parse to."""


def canonical_json(obj: Any) -> bytes:
    """Encode ``obj`` as canonical JSON bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def parse_canonical(data: bytes) -> Any:
    """Parse canonical JSON, rejecting anything that would re-encode differently."""
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotCanonical("not valid UTF-8 JSON") from exc
    if canonical_json(obj) != data:
        raise NotCanonical("JSON is not in canonical form")
    return obj


def _reject_constant(name: str) -> Any:
    raise NotCanonical(f"non-standard JSON constant {name}")


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url, no padding: rejects padding, other alphabets, non-canonical tails."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise ValueError("invalid base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64url") from exc
    if b64url_encode(raw) != text:
        raise ValueError("invalid base64url")
    return raw


def format_time(moment: datetime) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SSZ`` (sub-second precision is dropped)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Parse the canonical time format strictly; returns an aware UTC datetime."""
    try:
        moment = datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise ValueError("time must be UTC YYYY-MM-DDTHH:MM:SSZ") from exc
    if format_time(moment) != text:
        raise ValueError("time must be UTC YYYY-MM-DDTHH:MM:SSZ")
    return moment
