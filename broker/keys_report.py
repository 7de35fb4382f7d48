"""The key-rotation review: per agency, certificate expiry, key age, rotations, revocations.

Rules:
1. The report reads the federation directory's signed ``manifest.json`` and checks its
   signature against the federation root (``reload_manifest``: expiry and serial are not checked,
   so an expired manifest can still be reviewed). ``now`` is an argument.
2. An agency is **overdue** when it is not revoked and its newest announced encryption key valid
   at ``now`` is older than the rotation period (default 30 days), or no announced key is valid
   at ``now`` at all. ``overdue`` is what makes ``isa-broker keys report`` exit non-zero.
3. The announcement history (:mod:`broker.key_history`) says which manifest serial first
   published each kid; every report run records the manifest it reads. A kid first recorded by
   a report run carries ``recorded_by: "report"``: its serial is then an upper bound (it was
   published in that serial or an earlier one).
4. The JSON form follows ``docs/keys-report.schema.json`` (JSON Schema 2020-12); no secret of any
   kind appears in it.
5. ``deadlines`` lists everything that expires (``federation.deadlines``): the manifest, the root
   and manifest-signer certificates, every active agency's certificate and current encryption
   key, and every ISA's review and end date (from ``DIR/policies``, the files the manifest
   pins), each with its days left and severity under the thresholds; ``status`` is the worst.
   :func:`exit_status`: 0 all ok; 1 anything expired or overdue (a rotation, an ISA review, a
   certificate); 2 anything critical; 3 anything within the warning threshold.
6. :func:`render_prometheus` gives the same facts as gauges for a node-exporter textfile
   collector.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from broker.fedstate import FederationLayout, load_policies, load_state
from broker.key_history import history_file, record_manifest
from federation import pki
from federation.canonical import b64url_decode, format_time
from federation.deadlines import (
    DeadlineKind,
    Severity,
    Thresholds,
    isa_deadlines,
    manifest_deadlines,
    severity,
    worst,
)
from federation.errors import ConfigError, ManifestRejected
from federation.keys import KeyAnnouncement, utc
from federation.manifest import AgencyEntry, Manifest, reload_manifest

__all__ = [
    "AgencyKeys",
    "AnnouncementRecord",
    "DeadlineRecord",
    "KeysReport",
    "build_report",
    "exit_status",
    "history_path",
    "load_manifest",
    "render_prometheus",
    "render_text",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)
KeyState = Literal["current", "superseded", "expired", "not_yet_valid", "revoked"]


class AnnouncementRecord(BaseModel):
    model_config = _FROZEN
    kid: str
    not_before: str
    not_after: str
    first_serial: int | None
    published_at: str | None
    recorded_by: Literal["publish", "report"] | None
    state: KeyState


class RevocationRecord(BaseModel):
    model_config = _FROZEN
    kind: str
    ref: str
    revoked_at: str
    reason: str


class AgencyKeys(BaseModel):
    model_config = _FROZEN
    id: str
    name: str
    revoked: bool
    certificate_not_after: str
    certificate_days_left: float
    certificate_expired: bool
    current_kid: str | None
    current_key_age_days: float | None
    last_rotation: str | None
    overdue: bool
    overdue_reason: str
    announcements: tuple[AnnouncementRecord, ...]
    revocations: tuple[RevocationRecord, ...]


class DeadlineRecord(BaseModel):
    model_config = _FROZEN
    kind: DeadlineKind
    subject: str
    expires_at: str
    days_left: float
    severity: Severity


class ThresholdsRecord(BaseModel):
    model_config = _FROZEN
    warn_days: float
    critical_days: float
    manifest_renewal_hours: float


class KeysReport(BaseModel):
    model_config = _FROZEN
    v: Literal[1] = 1
    federation: str
    generated_at: str
    manifest_serial: int
    rotation_period_days: float
    overdue: tuple[str, ...]
    agencies: tuple[AgencyKeys, ...]
    thresholds: ThresholdsRecord
    status: Severity
    deadlines: tuple[DeadlineRecord, ...]


def history_path(layout: FederationLayout) -> str:
    return str(history_file(layout.root))


def load_manifest(layout: FederationLayout) -> Manifest:
    """The directory's manifest, its signature checked against the federation root (rule 1)."""
    try:
        root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
        data = layout.manifest.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc.filename}: not found (is this a federation directory?)") from None
    try:
        return reload_manifest(data, root_cert=root, pinned_fingerprint=pki.fingerprint(root))
    except ManifestRejected as exc:
        raise ConfigError(f"{layout.manifest}: does not verify ({exc.reason})") from None


def _state(
    note: KeyAnnouncement, current: str | None, revoked: set[str], now: datetime
) -> KeyState:
    if note.kid in revoked:
        return "revoked"
    if note.kid == current:
        return "current"
    if now < utc(note.not_before):
        return "not_yet_valid"
    return "superseded" if now < utc(note.not_after) else "expired"


def _agency(
    manifest: Manifest,
    entry: AgencyEntry,
    history: dict[str, dict[str, Any]],
    now: datetime,
    period: timedelta,
) -> AgencyKeys:
    cert = pki.certificate_from_bytes(b64url_decode(entry.certificate))
    cert_end = cert.not_valid_after_utc
    revoked = manifest.is_revoked(entry.id)
    current = manifest.current_encryption_key(entry.id, now)
    key_revoked = {r.ref for r in manifest.document.revocations if r.kind == "key"}
    age = None if current is None else now - utc(current.not_before)
    overdue_reason = ""
    if not revoked and current is None:
        overdue_reason = "no announced encryption key is valid now"
    elif not revoked and age is not None and age > period:
        overdue_reason = f"current key is {age.days} days old (rotate every {period.days})"
    notes = sorted(entry.announcements, key=lambda a: (a.not_before, a.kid))
    records = tuple(
        AnnouncementRecord(
            kid=n.kid,
            not_before=n.not_before,
            not_after=n.not_after,
            first_serial=history.get(n.kid, {}).get("serial"),
            published_at=history.get(n.kid, {}).get("published_at"),
            recorded_by=history.get(n.kid, {}).get("recorded_by"),
            state=_state(n, current.kid if current else None, key_revoked, now),
        )
        for n in notes
    )
    revocations = tuple(
        RevocationRecord(kind=r.kind, ref=r.ref, revoked_at=r.revoked_at, reason=r.reason)
        for r in manifest.document.revocations
        if r.agency == entry.id
    )
    return AgencyKeys(
        id=entry.id, name=entry.name, revoked=revoked,
        certificate_not_after=format_time(cert_end),
        certificate_days_left=round((cert_end - now) / timedelta(days=1), 2),
        certificate_expired=now >= cert_end,
        current_kid=current.kid if current else None,
        current_key_age_days=None if age is None else round(age / timedelta(days=1), 2),
        last_rotation=notes[-1].not_before if notes else None,
        overdue=bool(overdue_reason), overdue_reason=overdue_reason,
        announcements=records, revocations=revocations,
    )  # fmt: skip


def _deadlines(
    layout: FederationLayout, manifest: Manifest, now: datetime, thresholds: Thresholds
) -> tuple[DeadlineRecord, ...]:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    found = manifest_deadlines(manifest, root, now) + isa_deadlines(load_policies(layout.policies))
    return tuple(
        DeadlineRecord(
            kind=d.kind, subject=d.subject, expires_at=format_time(d.at),
            days_left=d.days_left(now), severity=severity(d, now, thresholds),
        )
        for d in found
    )  # fmt: skip


def build_report(
    layout: FederationLayout,
    now: datetime,
    *,
    rotation_period: timedelta = timedelta(days=30),
    thresholds: Thresholds = Thresholds(),  # noqa: B008 - frozen
) -> KeysReport:
    """The whole review (rules 1-3, 5); records the current manifest in the history first."""
    manifest = load_manifest(layout)
    history = record_manifest(layout.root, manifest, by="report")
    agencies = tuple(
        _agency(manifest, entry, history, now, rotation_period)
        for entry in sorted(manifest.document.agencies, key=lambda a: a.id)
    )
    deadlines = _deadlines(layout, manifest, now, thresholds)
    return KeysReport(
        federation=load_state(layout).name,
        generated_at=format_time(now),
        manifest_serial=manifest.serial,
        rotation_period_days=rotation_period / timedelta(days=1),
        overdue=tuple(a.id for a in agencies if a.overdue),
        agencies=agencies,
        thresholds=ThresholdsRecord(
            warn_days=thresholds.warn / timedelta(days=1),
            critical_days=thresholds.critical / timedelta(days=1),
            manifest_renewal_hours=thresholds.renewal / timedelta(hours=1),
        ),
        status=worst(d.severity for d in deadlines),
        deadlines=deadlines,
    )


def exit_status(report: KeysReport) -> int:
    """Rule 5: 0 ok, 1 expired or overdue, 2 critical, 3 warning."""
    if report.overdue or report.status == "expired":
        return 1
    return {"critical": 2, "warning": 3}.get(report.status, 0)


def render_text(report: KeysReport) -> str:
    """The human-readable form of the report."""
    lines = [
        f"key report for {report.federation} (manifest serial {report.manifest_serial},"
        f" rotate every {report.rotation_period_days:g} days) at {report.generated_at}"
    ]
    for a in report.agencies:
        flag = "REVOKED" if a.revoked else ("OVERDUE" if a.overdue else "ok")
        lines.append(f"{a.id} [{flag}] {a.name}")
        cert = "EXPIRED" if a.certificate_expired else f"{a.certificate_days_left:g} days left"
        lines.append(f"  signing certificate until {a.certificate_not_after} ({cert})")
        age = "-" if a.current_key_age_days is None else f"{a.current_key_age_days:g} days old"
        lines.append(
            f"  current key {a.current_kid or 'NONE'} ({age}); last rotation {a.last_rotation}"
        )
        if a.overdue:
            lines.append(f"  overdue: {a.overdue_reason}")
        for n in a.announcements:
            serial = "?" if n.first_serial is None else str(n.first_serial)
            bound = " (or earlier)" if n.recorded_by == "report" else ""
            lines.append(
                f"    {n.kid} {n.state:<13} {n.not_before} .. {n.not_after}"
                f"  first in serial {serial}{bound}"
            )
        for r in a.revocations:
            lines.append(f"  revoked {r.kind} {r.ref} at {r.revoked_at}: {r.reason}")
    t = report.thresholds
    lines.append(
        f"deadlines (warn < {t.warn_days:g} days, critical < {t.critical_days:g} days,"
        f" manifest < {t.manifest_renewal_hours:g} hours):"
    )
    for d in report.deadlines:
        lapsed = "OVERDUE" if d.kind == "isa_review" else "EXPIRED"
        left = f"{d.days_left:g} days left" if d.days_left > 0 else lapsed
        lines.append(f"  [{d.severity}] {d.kind} {d.subject}: {d.expires_at} ({left})")
    lines.append("overdue: " + (", ".join(report.overdue) if report.overdue else "none"))
    lines.append(f"status: {report.status}")
    return "\n".join(lines)


_GAUGES = {
    "isa_federation_expires_in_seconds": "Seconds until it lapses (negative once lapsed), by "
    "kind (manifest, root/signer/agency certificate, encryption key, ISA review or end).",
    "isa_federation_alert_severity": "0 ok, 1 warning, 2 critical, 3 expired or overdue.",
    "isa_federation_rotation_overdue": "1 when the agency's key rotation is overdue.",
    "isa_federation_manifest_serial": "The serial of the manifest reviewed.",
}
_LEVEL = {"ok": 0, "warning": 1, "critical": 2, "expired": 3}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(report: KeysReport, now: datetime) -> str:
    """Rule 6: the text exposition format, one family per gauge."""
    rows: dict[str, list[str]] = {name: [] for name in _GAUGES}
    for d in report.deadlines:
        labels = f'{{kind="{d.kind}",subject="{_label(d.subject)}"}}'
        left = (utc(d.expires_at) - now).total_seconds()
        rows["isa_federation_expires_in_seconds"].append(f"{labels} {left:.0f}")
        rows["isa_federation_alert_severity"].append(f"{labels} {_LEVEL[d.severity]}")
    for a in report.agencies:
        overdue = f'{{agency="{_label(a.id)}"}} {int(a.overdue)}'
        rows["isa_federation_rotation_overdue"].append(overdue)
    rows["isa_federation_manifest_serial"].append(f" {report.manifest_serial}")
    lines = []
    for name, text in _GAUGES.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        lines += [f"{name}{row}" for row in rows[name]]
    return "\n".join(lines) + "\n"
