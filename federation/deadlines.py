"""Everything in a federation that expires, with its deadline: the one list both the operator's
``isa-broker keys report`` and the agent's ``isa-agent check`` and ``/metrics`` judge.

Rules:
1. This module performs no I/O and reads no clock: callers pass a verified ``Manifest``, the
   loaded ISAs and ``now``.
2. A ``Deadline`` names a kind, a subject (``federation``, an agency id or an ISA id: stable
   across re-signs and rotations, so it can be a metric label) and the moment it lapses. ISA
   dates (``review.next_review``, ``effective_to``) are days: they lapse at 00:00 UTC that day.
3. Severity at ``now`` (:class:`Thresholds`): ``expired`` once the moment has come (for an ISA
   review date that reads "overdue"). Before that, by kind:
   - certificates and ISA dates (renewed by people): ``critical`` with less than ``critical``
     left, ``warning`` with less than ``warn`` left, else ``ok``;
   - the manifest (re-signed by a job ``renewal`` ahead of expiry): ``critical`` with less than
     ``renewal`` left, since the re-signing job is then not running; else ``ok``;
   - an encryption key: ``ok`` (the agent rotates it as it lapses; a missing rotation is the
     keys report's "overdue", judged by the rotation period).
4. Revoked agencies are left out (nothing of theirs is relied on); an agency's encryption key is
   the one announced and valid at ``now`` (the one others seal to).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from cryptography import x509

from federation import pki
from federation.canonical import b64url_decode, format_time
from federation.isa import Isa
from federation.keys import utc
from federation.manifest import Manifest

__all__ = [
    "Deadline",
    "DeadlineKind",
    "Severity",
    "Thresholds",
    "isa_deadlines",
    "manifest_deadlines",
    "severity",
    "signer_certificate",
    "worst",
]

DeadlineKind = Literal[
    "manifest",
    "root_certificate",
    "signer_certificate",
    "agency_certificate",
    "encryption_key",
    "isa_review",
    "isa_end",
]
Severity = Literal["ok", "warning", "critical", "expired"]
_ORDER: dict[Severity, int] = {"ok": 0, "warning": 1, "critical": 2, "expired": 3}
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Deadline:
    """One thing that lapses at ``at`` (rule 2)."""

    kind: DeadlineKind
    subject: str
    at: datetime

    def seconds_left(self, now: datetime) -> float:
        return (self.at - now).total_seconds()

    def days_left(self, now: datetime) -> float:
        return round((self.at - now) / _DAY, 2)

    def line(self, now: datetime) -> str:
        """``kind subject: until TIME (N days left | EXPIRED/OVERDUE N days ago)``."""
        days = self.days_left(now)
        lapsed = "OVERDUE" if self.kind == "isa_review" else "EXPIRED"
        left = f"{days:g} days left" if days > 0 else f"{lapsed} {-days:g} days ago"
        return f"{self.kind} {self.subject}: until {format_time(self.at)} ({left})"


@dataclass(frozen=True)
class Thresholds:
    """When a deadline is close enough to alert (rule 3)."""

    warn: timedelta = timedelta(days=30)
    critical: timedelta = timedelta(days=7)
    renewal: timedelta = timedelta(hours=48)


def severity(deadline: Deadline, now: datetime, thresholds: Thresholds) -> Severity:
    """Rule 3."""
    left = deadline.at - now
    if left <= timedelta(0):
        return "expired"
    if deadline.kind == "encryption_key":
        return "ok"
    if deadline.kind == "manifest":
        return "critical" if left < thresholds.renewal else "ok"
    if left < thresholds.critical:
        return "critical"
    return "warning" if left < thresholds.warn else "ok"


def worst(severities: Iterable[Severity]) -> Severity:
    """The most severe of ``severities`` (``ok`` for none)."""
    return max(severities, key=_ORDER.__getitem__, default="ok")


def signer_certificate(manifest: Manifest) -> x509.Certificate:
    """The manifest signer's certificate carried in the (already verified) manifest file."""
    outer = json.loads(manifest.file_bytes)
    return pki.certificate_from_bytes(b64url_decode(outer["signer_certificate"]))


def manifest_deadlines(
    manifest: Manifest, root: x509.Certificate, now: datetime
) -> list[Deadline]:
    """The manifest, the root and signer certificates, and every active agency's certificate
    and current encryption key (rule 4); the ISAs' dates come from :func:`isa_deadlines`."""
    signer = signer_certificate(manifest)
    found = [
        Deadline("manifest", "federation", manifest.expires_at),
        Deadline("root_certificate", "federation", root.not_valid_after_utc),
        Deadline("signer_certificate", "federation", signer.not_valid_after_utc),
    ]
    for entry in sorted(manifest.document.agencies, key=lambda a: a.id):
        identity = manifest.signing_key_of(entry.id)
        if manifest.is_revoked(entry.id) or identity is None:
            continue
        found.append(Deadline("agency_certificate", entry.id, identity.not_after))
        key = manifest.current_encryption_key(entry.id, now)
        if key is not None:
            found.append(Deadline("encryption_key", entry.id, utc(key.not_after)))
    return found


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def isa_deadlines(isas: Iterable[Isa]) -> list[Deadline]:
    """Every ISA's next review date and, when it has one, its end date (rule 2)."""
    found = []
    for isa in sorted(isas, key=lambda i: i.id):
        header = isa.doc.isa
        found.append(Deadline("isa_review", isa.id, _midnight(header.review.next_review)))
        if header.effective_to is not None:
            found.append(Deadline("isa_end", isa.id, _midnight(header.effective_to)))
    return found
