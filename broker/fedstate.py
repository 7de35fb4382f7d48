"""The operator's federation directory: CA, manifest signer, agencies, announcements, manifest.

Rules:
1. One directory holds a federation (``isa-broker dev-federation --out DIR`` creates it); every
   other command (``manifest build``, ``agency add|revoke``, ``provision``, ``serve``) reads and
   updates it. Private keys are written with mode 0600 and never overwritten.
2. The operator never holds an agency's encryption private key: it collects the agency's signed
   key announcements (``announcements/<agency>/<kid>.json``) and publishes them in the manifest.
   (In a *dev* federation the agencies' own directories sit beside it, under ``agencies/``.)
3. Each manifest build takes the next serial from ``federation.toml`` and re-verifies the result
   exactly as an agent would before writing it (so a broken federation is never published).
4. A manifest expires ``manifest_validity_hours`` after it is issued (``federation.toml``; set
   by ``dev-federation --manifest-days`` and ``manifest build --validity-hours``, kept for every
   later build). It is 1 hour to 90 days: shorter and agents fail closed between two builds,
   longer and a revocation could be rolled back by replaying an old, still valid manifest.
5. Every read-modify-write of the directory (``publish_manifest``, ``agency add|announce|revoke``,
   the re-signing loop of ``isa-broker serve``) runs under :func:`federation_lock`: an exclusive
   ``flock`` on ``DIR/.lock``, re-entrant within one process. Two writers can therefore never
   publish the same serial twice, drop each other's change, or roll the serial back.
6. ISA distribution (issue 15.5): ``manifest_format`` 2 (``manifest build --format``; a new dev
   federation's; absent from an older ``federation.toml``: 1, which agents before format 2
   read) carries each ISA's YAML in the manifest. Every build judges the ISAs of
   ``DIR/policies`` against the versions already published (``broker.isa_history``): a
   published version never changes, a newer one supersedes the previous version after
   ``isa_switch_minutes``, which stays accepted for ``isa_grace_days``. A refused build writes
   nothing but its line in ``DIR/isas/audit.jsonl``.

Layout::

    DIR/.lock                      the writers' lock file (rule 5)
    DIR/federation.toml            serial, validity, agencies (id, name, broker user, revocation)
    DIR/broker.toml                RabbitMQ provisioning (password hashes only)
    DIR/manifest.json              the signed manifest
    DIR/ca/root.pem, root.key      federation root CA (root.key: 0600; keep offline in production)
    DIR/ca/manifest-signer.pem/.key
    DIR/certs/<agency>.pem         agency signing certificates
    DIR/announcements/<agency>/<kid>.json
    DIR/policies/*.yaml            the ISAs the manifest pins by SHA-256 (and carries, format 2)
    DIR/isas/<id>/<version>.yaml, history.json, audit.jsonl   every published ISA version
    DIR/renewals/pending/<agency>.json, audit.jsonl   certificate renewals (broker.renewals)
    DIR/ca/next-root.pem/.key, previous-root.pem/.key   during/after a root rotation
    DIR/agencies/<agency>/         (dev only) each agency's agent.toml, keys/, data/, api-token
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.durable import write_durably
from broker.isa_history import (
    DEFAULT_GRACE_DAYS,
    DEFAULT_SWITCH_MINUTES,
    IsaArchive,
    Offered,
    check_isa_terms,
    listed_entries,
    plan_publication,
)
from broker.key_history import record_manifest
from federation import pki
from federation.canonical import b64url_encode, canonical_json, format_time
from federation.errors import ConfigError, IsaRelayError, PolicyError
from federation.isa import Isa, load_isa
from federation.keyfile import load_signing_key
from federation.keys import KeyAnnouncement, SigningKey, parse_announcement
from federation.manifest import (
    AgencyEntry,
    ManifestDocument,
    Revocation,
    build_manifest,
    verify_manifest,
)

__all__ = [
    "MANIFEST_VALIDITY_HOURS",
    "AgencyState",
    "FederationLayout",
    "FederationState",
    "RevocationState",
    "announcement_json",
    "check_manifest_validity",
    "federation_lock",
    "load_policies",
    "load_policy_files",
    "load_state",
    "publish_manifest",
    "read_private",
    "save_state",
    "write_durably",
    "write_private",
]


MANIFEST_VALIDITY_HOURS = (1.0, 90 * 24.0)  # rule 4: the sane range, inclusive


def check_manifest_validity(hours: float, option: str = "--validity-hours") -> float:
    """``hours`` if it is within :data:`MANIFEST_VALIDITY_HOURS` (rule 4), else a ConfigError."""
    low, high = MANIFEST_VALIDITY_HOURS
    if not low <= hours <= high:  # NaN fails too
        raise ConfigError(
            f"{option}: a manifest lifetime is {low:g} to {high:g} hours (90 days), not {hours:g}"
        )
    return hours


class AgencyState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")
    name: str
    broker_user: str
    revoked_at: str | None = None
    revocation_reason: str = ""


class RevocationState(BaseModel):
    """One key or certificate revoked on its own (``broker.revocation``): published as is."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["certificate", "key"]
    agency: str
    ref: str
    revoked_at: str
    reason: str


class FederationState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "ISA Relay federation"
    serial: int = Field(default=0, ge=0)
    manifest_validity_hours: float = Field(default=168.0, gt=0)
    manifest_format: Literal[1, 2] = 1  # rule 6: absent from an older federation.toml
    isa_switch_minutes: float = DEFAULT_SWITCH_MINUTES
    isa_grace_days: float = DEFAULT_GRACE_DAYS
    agencies: tuple[AgencyState, ...] = ()
    revocations: tuple[RevocationState, ...] = ()

    def agency(self, agency_id: str) -> AgencyState | None:
        return next((a for a in self.agencies if a.id == agency_id), None)


@dataclass(frozen=True)
class FederationLayout:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "federation.toml"

    @property
    def broker_toml(self) -> Path:
        return self.root / "broker.toml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def root_cert(self) -> Path:
        return self.root / "ca" / "root.pem"

    @property
    def root_key(self) -> Path:
        return self.root / "ca" / "root.key"

    @property
    def signer_cert(self) -> Path:
        return self.root / "ca" / "manifest-signer.pem"

    @property
    def signer_key(self) -> Path:
        return self.root / "ca" / "manifest-signer.key"

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    def agency_cert(self, agency: str) -> Path:
        return self.root / "certs" / f"{agency}.pem"

    def announcements(self, agency: str) -> Path:
        return self.root / "announcements" / agency

    def agency_dir(self, agency: str) -> Path:
        return self.root / "agencies" / agency


_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
_DEPTH: dict[Path, int] = {}


@contextlib.contextmanager
def federation_lock(layout: FederationLayout) -> Iterator[None]:
    """Hold the directory's writers' lock (rule 5); blocks until the other writer is done."""
    path = (layout.root / ".lock").resolve()
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(path, threading.RLock())
    with lock:  # threads of this process, re-entrant; flock serialises processes
        if _DEPTH.get(path, 0):
            _DEPTH[path] += 1
            try:
                yield
            finally:
                _DEPTH[path] -= 1
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _DEPTH[path] = 1
            try:
                yield
            finally:
                _DEPTH[path] = 0
        finally:
            os.close(fd)  # closing releases the flock


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with mode 0600 (its directory, if new, 0700); refuses to overwrite."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def read_private(path: Path) -> SigningKey:
    """Load an Ed25519 key file, refusing group/other-readable files."""
    try:
        return load_signing_key(path.read_bytes(), mode=path.stat().st_mode)
    except FileNotFoundError:
        raise ConfigError(f"{path}: key file not found") from None


def load_state(layout: FederationLayout) -> FederationState:
    try:
        raw = tomllib.loads(layout.state_file.read_text(encoding="utf-8"))
        return FederationState.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(
            f"{layout.state_file}: not a federation directory (run isa-broker dev-federation)"
        ) from None
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConfigError(f"{layout.state_file}: invalid ({exc.__class__.__name__})") from None


def save_state(layout: FederationLayout, state: FederationState) -> None:
    lines = [
        f"name = {_toml(state.name)}",
        f"serial = {state.serial}",
        f"manifest_validity_hours = {state.manifest_validity_hours}",
        f"manifest_format = {state.manifest_format}",
        f"isa_switch_minutes = {state.isa_switch_minutes}",
        f"isa_grace_days = {state.isa_grace_days}",
    ]
    for agency in state.agencies:
        lines += ["", "[[agencies]]"]
        for key, value in agency.model_dump(exclude_none=True).items():
            lines.append(f"{key} = {_toml(str(value))}")
    for revocation in state.revocations:
        lines += ["", "[[revocations]]"]
        lines += [f"{k} = {_toml(v)}" for k, v in revocation.model_dump().items()]
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(layout.state_file)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_policies(directory: Path, known_agencies: list[str] | None = None) -> list[Isa]:
    """Load every ``*.yaml`` ISA in ``directory``; ``PolicyError`` lists all problems."""
    return [item.isa for item in load_policy_files(directory, known_agencies)]


def load_policy_files(directory: Path, known_agencies: list[str] | None = None) -> list[Offered]:
    """Every ``*.yaml`` ISA in ``directory`` with the bytes it was loaded from (read once)."""
    files = sorted(p for p in directory.glob("*.yaml") if p.is_file())
    if not files:
        raise ConfigError(f"{directory}: no ISA files (*.yaml)")
    found, problems = [], []
    for path in files:
        data = path.read_bytes()
        try:
            found.append(Offered(load_isa(str(path), data, known_agencies=known_agencies), data))
        except PolicyError as exc:
            problems += exc.problems
    if problems:
        raise PolicyError(problems)
    return found


def _announcements(layout: FederationLayout, agency: str) -> list[KeyAnnouncement]:
    folder = layout.announcements(agency)
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        found.append(parse_announcement(json.loads(path.read_text(encoding="utf-8"))))
    return found


def _agency_entry(layout: FederationLayout, agency: AgencyState) -> AgencyEntry:
    cert = pki.certificate_from_bytes(layout.agency_cert(agency.id).read_bytes())
    return AgencyEntry(
        id=agency.id,
        name=agency.name,
        certificate=b64url_encode(pki.certificate_to_der(cert)),
        broker_user=agency.broker_user,
        announcements=_announcements(layout, agency.id),
        revoked_at=agency.revoked_at,
    )


def _revocations(state: FederationState) -> list[Revocation]:
    """One ``agency`` revocation per revoked agency (its ``revoked_at`` and reason), then each
    key and certificate revoked on its own."""
    single = [Revocation(**r.model_dump()) for r in state.revocations]
    return [
        Revocation(
            kind="agency",
            agency=a.id,
            ref=a.id,
            revoked_at=a.revoked_at,
            reason=a.revocation_reason[:200],
        )
        for a in state.agencies
        if a.revoked_at is not None
    ] + single


def publish_manifest(
    layout: FederationLayout,
    now: datetime,
    *,
    validity_hours: float | None = None,
    manifest_format: Literal[1, 2] | None = None,
    isa_switch_minutes: float | None = None,
    isa_grace_days: float | None = None,
) -> tuple[int, list[str]]:
    """Build, sign, self-verify and write the next manifest, under the lock (rule 5); returns
    (serial, ISA ids).

    ``validity_hours`` (checked, rule 4), ``manifest_format`` and the ISA terms (checked,
    ``broker.isa_history`` rule 4) replace the stored ones, for this build and later ones; they
    are saved only when the manifest is written. An ISA the history refuses (rule 6) is audited
    and the build fails with its ``PolicyError``.
    """
    with federation_lock(layout):
        state = load_state(layout)
        changes = {"manifest_format": manifest_format, "isa_switch_minutes": isa_switch_minutes,
                   "isa_grace_days": isa_grace_days}  # fmt: skip
        state = state.model_copy(update={k: v for k, v in changes.items() if v is not None})
        if validity_hours is not None:
            hours = check_manifest_validity(validity_hours)
            state = state.model_copy(update={"manifest_validity_hours": hours})
        archive = IsaArchive(layout.root)
        try:
            return _publish_manifest(layout, now, state, archive)
        except PolicyError as exc:
            for problem in exc.problems:
                archive.audit(now, "refused", file=problem.file, reason=problem.message[:500])
            raise


def _offered_isas(layout: FederationLayout, state: FederationState) -> list[Offered]:
    """An ISA is published only when every party is a member: a federation of a few agencies
    (a test, a pilot) leaves out the agreements it cannot honour."""
    known = {a.id for a in state.agencies}
    return [
        item
        for item in load_policy_files(layout.policies)
        if {p.id for p in item.isa.doc.parties} <= known
    ]


def _publish_manifest(
    layout: FederationLayout, now: datetime, state: FederationState, archive: IsaArchive
) -> tuple[int, list[str]]:
    terms = check_isa_terms(state.isa_switch_minutes, state.isa_grace_days)
    offered = _offered_isas(layout, state)
    publication = plan_publication(archive.records(), offered, now, terms)  # rule 6
    entries = listed_entries(
        publication.records, offered, archived=lambda r: archive.read(r, load_isa),
        members={a.id for a in state.agencies}, now=now, document_version=state.manifest_format,
    )  # fmt: skip
    serial = state.serial + 1
    document = ManifestDocument(
        v=state.manifest_format,
        serial=serial,
        issued_at=format_time(now),
        expires_at=format_time(now + timedelta(hours=state.manifest_validity_hours)),
        agencies=[_agency_entry(layout, a) for a in state.agencies],
        isas=entries,
        revocations=_revocations(state),
    )
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    data = build_manifest(
        document,
        signer_key=read_private(layout.signer_key),
        signer_cert=pki.certificate_from_bytes(layout.signer_cert.read_bytes()),
    )
    try:
        manifest = verify_manifest(
            data,
            root_cert=root,
            pinned_fingerprint=pki.fingerprint(root),
            now=now,
            current_serial=state.serial,
        )
    except IsaRelayError as exc:
        raise ConfigError(f"the built manifest does not verify: {exc.message}") from None
    tmp = layout.manifest.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(layout.manifest)
    save_state(layout, state.model_copy(update={"serial": serial}))
    if publication.published or publication.superseded:
        new = {r.sha256 for r in publication.published}
        archive.keep([item for item in offered if item.isa.sha256 in new])
        archive.save(publication.records)
        archive.audit_publication(now, publication)
    record_manifest(layout.root, manifest, by="publish")  # each key's first serial, exactly
    return serial, [item.isa.id for item in offered]


def announcement_json(announcement: KeyAnnouncement) -> bytes:
    return canonical_json(announcement.model_dump()) + b"\n"
