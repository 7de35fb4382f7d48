"""The ISA versions a federation has published: the archive, the version chain, the grace.

Rules:
1. Every version of an ISA the federation publishes is kept write-once, its exact bytes in
   ``DIR/isas/<id>/<version>.yaml`` and its record (id, version, sha256, ``published_at``,
   ``superseded_at``, ``accept_until``) in ``DIR/isas/history.json``.
2. A build offers the ISAs of ``DIR/policies`` (each loads and lints; ``broker.fedstate``).
   :func:`plan_publication` (pure) judges each against the history: the same version with the
   same bytes is unchanged; **the same version with other bytes is refused** (a published
   version never changes, since every receiver pins it by sha256), and so is a version not newer
   (semver) than the newest published one, including a superseded text offered again. A newer
   version is published now, and the version it replaces is superseded at ``now + switch``
   rounded up to a whole second (never before an earlier supersession of that ISA) and
   accepted until ``superseded_at + grace``.
3. :func:`listed_entries`: the manifest lists, per offered ISA, its current version and, in
   format 2 with the document bytes, each earlier version whose ``accept_until`` is still ahead
   (and whose parties are all still members); a version past it leaves the manifest, the
   archive keeps it.
4. ``switch`` and ``grace`` (:class:`IsaTerms`, ``federation.toml`` ``isa_switch_minutes`` and
   ``isa_grace_days``, set by ``manifest build``) are bounded by :func:`check_isa_terms`: the
   switch 0 to 7 days (default 15 minutes: agents poll every minute by default, so they all
   hold the new version before it governs); the grace at least the longest a message sealed
   just before the switch can travel, the agents' default message lifetime (120 hours) plus
   one hour of clock skew, and at most 90 days (default 7 days).
5. Every version published, every supersession and every refused build is one line of
   ``DIR/isas/audit.jsonl`` (time, event, ISA id, version, sha256, reason): no personal data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from broker.durable import append_durably, write_durably
from federation.canonical import b64url_encode, canonical_json, format_time
from federation.errors import ConfigError, PolicyError, PolicyProblem
from federation.isa import Isa
from federation.isa_entries import IsaEntry, entry_fields, semver
from federation.keys import utc

__all__ = [
    "DEFAULT_GRACE_DAYS",
    "DEFAULT_SWITCH_MINUTES",
    "IsaArchive",
    "IsaRecord",
    "IsaTerms",
    "Offered",
    "Publication",
    "check_isa_terms",
    "listed_entries",
    "plan_publication",
]

DEFAULT_SWITCH_MINUTES = 15.0
DEFAULT_GRACE_DAYS = 7.0
MAX_SWITCH_MINUTES = 7 * 24 * 60.0
#: rule 4: agents' default message lifetime ([limits] message_ttl_hours) + one hour of skew
MIN_GRACE_HOURS = 120.0 + 1.0
MAX_GRACE_DAYS = 90.0


class IsaRecord(BaseModel):
    """One published version of one ISA (rule 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    version: str
    sha256: str
    published_at: str
    superseded_at: str | None = None
    accept_until: str | None = None


_RECORDS = TypeAdapter(list[IsaRecord])


@dataclass(frozen=True)
class IsaTerms:
    """When a newer version governs (``switch`` after its first manifest) and how long the
    version it replaces is still accepted for messages sealed before then (``grace``)."""

    switch: timedelta = timedelta(minutes=DEFAULT_SWITCH_MINUTES)
    grace: timedelta = timedelta(days=DEFAULT_GRACE_DAYS)


def check_isa_terms(switch_minutes: float, grace_days: float) -> IsaTerms:
    """Rule 4: the terms, or a ``ConfigError`` naming the option and its range."""
    if not 0 <= switch_minutes <= MAX_SWITCH_MINUTES:  # NaN fails too
        raise ConfigError(
            f"--isa-switch-minutes: 0 to {MAX_SWITCH_MINUTES:g} (7 days), not {switch_minutes:g}"
        )
    if not MIN_GRACE_HOURS / 24 <= grace_days <= MAX_GRACE_DAYS:
        raise ConfigError(
            f"--isa-grace-days: at least {MIN_GRACE_HOURS / 24:.2f} (the agents' message lifetime"
            f" of 120 hours + 1 hour, so a message sealed under the replaced version can still"
            f" arrive) and at most {MAX_GRACE_DAYS:g}, not {grace_days:g}"
        )
    return IsaTerms(timedelta(minutes=switch_minutes), timedelta(days=grace_days))


@dataclass(frozen=True)
class Offered:
    """An ISA file of ``DIR/policies`` that loaded and linted, with its exact bytes."""

    isa: Isa
    data: bytes


@dataclass(frozen=True)
class Publication:
    """The history after a build, and what the build newly published and superseded."""

    records: tuple[IsaRecord, ...]
    published: tuple[IsaRecord, ...] = ()
    superseded: tuple[IsaRecord, ...] = ()


def plan_publication(
    history: Sequence[IsaRecord], offered: Sequence[Offered], now: datetime, terms: IsaTerms
) -> Publication:
    """Rule 2; ``PolicyError`` (one problem per refused ISA, at its ``version`` line)."""
    records = list(history)
    published: list[IsaRecord] = []
    superseded: list[IsaRecord] = []
    problems: list[PolicyProblem] = []
    for item in offered:
        isa = item.isa
        mine = [r for r in records if r.id == isa.id]
        problem = _refusal(isa, mine)
        if problem is not None:
            problems.append(PolicyProblem(isa.source, isa.line_of("isa", "version"), problem))
            continue
        if any(r.version == isa.version for r in mine):
            continue  # the same text again
        new = IsaRecord(id=isa.id, version=isa.version, sha256=isa.sha256,
                        published_at=format_time(now))  # fmt: skip
        current = next((r for r in mine if r.superseded_at is None), None)
        if current is not None:
            old = _supersede(current, mine, now, terms)
            records[records.index(current)] = old
            superseded.append(old)
        records.append(new)
        published.append(new)
    if problems:
        raise PolicyError(problems)
    return Publication(tuple(records), tuple(published), tuple(superseded))


def _refusal(isa: Isa, mine: Sequence[IsaRecord]) -> str | None:
    same = next((r for r in mine if r.version == isa.version), None)
    if same is not None and same.sha256 != isa.sha256:
        return (
            f"{isa.id} version {isa.version} was published on {same.published_at} with other"
            f" bytes (sha256 {same.sha256[:16]}..., this file {isa.sha256[:16]}...): a"
            " published version never changes; give this text a new version"
        )
    if same is not None and same.superseded_at is not None:
        return (
            f"{isa.id} version {isa.version} was superseded at {same.superseded_at}: to go back"
            " to its text, publish it under a new version"
        )
    newest = max(mine, key=_order, default=None)
    if same is None and newest is not None and _order_of(isa.version) <= _order(newest):
        return (
            f"{isa.id} version {isa.version} is not newer than {newest.version}, published on"
            f" {newest.published_at}: a new text needs a higher version"
        )
    return None


def _order_of(version: str) -> tuple[int, int, int]:
    return semver(version) or (0, 0, 0)  # an ISA's version is always MAJOR.MINOR.PATCH


def _order(record: IsaRecord) -> tuple[int, int, int]:
    return _order_of(record.version)


def _whole_second_after(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole second: times on the wire have no fractions, and a
    message sealed a fraction of a second before the build must read as sealed before."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def _supersede(
    current: IsaRecord, mine: Sequence[IsaRecord], now: datetime, terms: IsaTerms
) -> IsaRecord:
    at = _whole_second_after(now + terms.switch)  # every message sealed before is older
    earlier = [utc(r.superseded_at) for r in mine if r.superseded_at is not None]
    if earlier and at <= max(earlier):  # rule 2: in order, strictly
        at = max(earlier) + timedelta(seconds=1)
    return current.model_copy(
        update={"superseded_at": format_time(at), "accept_until": format_time(at + terms.grace)}
    )


def listed_entries(
    records: Sequence[IsaRecord],
    offered: Sequence[Offered],
    *,
    archived: Callable[[IsaRecord], Offered],
    members: set[str],
    now: datetime,
    document_version: int,
) -> list[IsaEntry]:
    """Rule 3: the manifest's ISA entries for ``offered``, current version first."""
    entries: list[IsaEntry] = []
    for item in offered:
        entries.append(_entry(item, document_version))
        if document_version < 2:
            continue
        for record in records:
            if record.id != item.isa.id or record.accept_until is None:
                continue
            if now >= utc(record.accept_until):
                continue
            old = archived(record)
            if {p.id for p in old.isa.doc.parties} <= members:
                entries.append(_entry(old, document_version, record))
    return entries


def _entry(item: Offered, document_version: int, record: IsaRecord | None = None) -> IsaEntry:
    fields = entry_fields(item.isa)
    if document_version >= 2:
        fields["document"] = b64url_encode(item.data)
    if record is not None:
        fields |= {"superseded_at": record.superseded_at, "accept_until": record.accept_until}
    return IsaEntry(**fields)


class IsaArchive:
    """``DIR/isas``: the published versions' bytes, their history and the audit (rules 1, 5)."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "isas"

    @property
    def history_file(self) -> Path:
        return self.folder / "history.json"

    @property
    def audit_file(self) -> Path:
        return self.folder / "audit.jsonl"

    def records(self) -> list[IsaRecord]:
        try:
            return _RECORDS.validate_json(self.history_file.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValidationError):
            raise ConfigError(f"{self.history_file}: unreadable ISA history") from None

    def save(self, records: Sequence[IsaRecord]) -> None:
        data = json.dumps([r.model_dump() for r in records], indent=1, sort_keys=True)
        write_durably(self.history_file, data.encode("utf-8") + b"\n")

    def _path(self, isa_id: str, version: str) -> Path:
        return self.folder / isa_id / f"{version}.yaml"

    def keep(self, items: Sequence[Offered]) -> None:
        """Write each version's bytes once; a kept version with other bytes is an error."""
        for item in items:
            path = self._path(item.isa.id, item.isa.version)
            if path.exists():
                if path.read_bytes() != item.data:
                    raise ConfigError(f"{path}: the archived text differs from {item.isa.source}")
                continue
            write_durably(path, item.data)

    def read(self, record: IsaRecord, load: Callable[[str, bytes], Isa]) -> Offered:
        """A published version back from the archive, loaded with ``load``."""
        path = self._path(record.id, record.version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{path}: a published ISA version is missing") from None
        return Offered(load(str(path), data), data)

    def audit(self, now: datetime, event: str, **fields: str) -> None:
        """Rule 5: one fsynced JSON line."""
        line = canonical_json({"at": format_time(now), "event": event} | fields)
        append_durably(self.audit_file, line)

    def audit_publication(self, now: datetime, publication: Publication) -> None:
        for record in publication.published:
            self.audit(now, "published", isa=record.id, version=record.version,
                       sha256=record.sha256)  # fmt: skip
        for record in publication.superseded:
            assert record.superseded_at is not None
            assert record.accept_until is not None
            self.audit(now, "superseded", isa=record.id, version=record.version,
                       sha256=record.sha256, superseded_at=record.superseded_at,
                       accept_until=record.accept_until)  # fmt: skip
