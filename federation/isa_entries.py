"""The ISAs a manifest lists: one entry per version, its document, and which version governs.

This module performs no I/O and reads no clock: ``now`` is always an argument.

Rules:
1. An entry pins one version of one ISA: ``id``, ``version``, ``sha256`` (hex SHA-256 of the
   exact YAML bytes), ``parties``, ``status`` and the effective dates, all as the document
   states them (:func:`entry_fields`). A format-2 manifest also carries the bytes themselves
   (``document``, base64url) and may list earlier versions of an ISA, each marked with
   ``superseded_at`` and ``accept_until``; a format-1 manifest has neither (its agents read the
   YAML from their own ``policies_dir``).
2. Per ISA id exactly one entry is **current** (not superseded). The superseded ones are older
   versions (lower semver than the current), superseded in version order at strictly
   increasing ``superseded_at``, each with ``superseded_at < accept_until``
   (:func:`check_versions`, reason ``isa_versions``).
3. The version **in force** at ``t`` is the oldest entry whose ``superseded_at`` is after ``t``,
   or the current one when there is none (:func:`in_force`): a sender seals under it. The
   operator's build schedules ``superseded_at`` a lead time after the manifest that first lists
   the newer version, so agents hold both versions before the newer one governs.
4. A receiver accepts a message citing version ``v`` of an ISA (:func:`cited_entry`) only if the
   manifest lists ``v`` with the cited sha256 (else ``isa_mismatch``); a superseded ``v`` only if
   the message was sealed (``created_at``) before ``superseded_at`` and arrives before
   ``accept_until`` (else ``isa_superseded``). A version the manifest does not list is
   ``isa_superseded`` when it is older than the current one, and ``isa_version_unknown``
   otherwise: the receiver's manifest may be behind the sender's (its agent fetches the manifest
   once and judges again before refusing).
5. A format-2 manifest's documents (:func:`load_documents`): each decodes and hashes to its
   entry's sha256, and states the entry's id, version, parties, status and dates
   (``isa_document_mismatch``); each loads and lints without error against the manifest's
   agencies (``isa_document_invalid``). One bad document refuses the whole manifest (the one
   held stays in force): an agent never runs with part of the federation's agreements.
6. Loading is memoised by (sha256, agencies), the last ``_MEMO_SIZE`` documents: the bytes and
   the agencies decide the result, so a manifest re-signed with the same ISAs (every new serial:
   a re-sign, a key announcement) is not linted again.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from federation.canonical import b64url_decode, format_time
from federation.errors import EnvelopeRejected, ManifestRejected, PolicyError
from federation.isa import Isa, IsaRegistry, load_isa
from federation.keys import UtcTime
from federation.keys import utc as _t

__all__ = [
    "MAX_ISA_BYTES",
    "IsaEntry",
    "check_versions",
    "cited_entry",
    "entry_fields",
    "in_force",
    "load_documents",
    "registry_at",
    "semver",
]

#: the largest ISA document a manifest carries (the shipped ones are 3-6 KiB)
MAX_ISA_BYTES = 256 * 1024
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
AgencyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
Document = Annotated[str, Field(min_length=1, max_length=(MAX_ISA_BYTES * 4 + 2) // 3)]


class IsaEntry(BaseModel):
    """One version of an ISA the federation has adopted (rule 1)."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    sha256: Hex64
    parties: list[AgencyId] = Field(min_length=2)
    status: Literal["draft", "active", "suspended", "retired"]
    effective_from: UtcTime
    effective_to: UtcTime | None = None
    superseded_at: UtcTime | None = None
    accept_until: UtcTime | None = None
    document: Document | None = None

    def active_at(self, moment: datetime) -> bool:
        if self.status != "active" or moment < _t(self.effective_from):
            return False
        return self.effective_to is None or moment < _t(self.effective_to)

    @property
    def superseded(self) -> bool:
        return self.superseded_at is not None


def entry_fields(isa: Isa) -> dict[str, Any]:
    """What an entry states about a loaded ISA (rule 1): the broker builds entries from it and
    an agent checks a carried document against it (rule 5)."""
    header = isa.doc.isa
    to = header.effective_to
    return {
        "id": isa.id,
        "version": isa.version,
        "sha256": isa.sha256,
        "parties": sorted(p.id for p in isa.doc.parties),
        "status": {"terminated": "retired"}.get(header.status, header.status),
        "effective_from": format_time(datetime.combine(header.effective_from, time(), UTC)),
        "effective_to": None if to is None else format_time(datetime.combine(to, time(), UTC)),
    }


def semver(version: str) -> tuple[int, int, int] | None:
    """``"1.2.3"`` as ``(1, 2, 3)``; None for a version that is not ``MAJOR.MINOR.PATCH``."""
    match = _SEMVER.match(version)
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def _by_id(entries: Iterable[IsaEntry]) -> dict[str, list[IsaEntry]]:
    grouped: dict[str, list[IsaEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.id, []).append(entry)
    return grouped


def _chain(versions: Sequence[IsaEntry]) -> list[IsaEntry]:
    """One ISA's entries oldest first: superseded by ``superseded_at``, then the current."""
    old = sorted((e for e in versions if e.superseded_at is not None), key=_superseded_key)
    return old + [e for e in versions if e.superseded_at is None]


def _superseded_key(entry: IsaEntry) -> str:
    return entry.superseded_at or ""


def check_versions(entries: Sequence[IsaEntry]) -> None:
    """Rule 2 for every ISA id; ``ManifestRejected('duplicate' | 'isa_versions')``."""
    for isa_id, versions in _by_id(entries).items():
        if len({e.version for e in versions}) != len(versions):
            raise ManifestRejected("duplicate", f"ISA {isa_id} lists a version twice")
        if sum(e.superseded_at is None for e in versions) != 1:
            raise ManifestRejected("isa_versions", f"ISA {isa_id} has not exactly one current")
        chain = _chain(versions)
        for older, newer in itertools.pairwise(chain):
            _check_pair(isa_id, older, newer)


def _check_pair(isa_id: str, older: IsaEntry, newer: IsaEntry) -> None:
    low, high = semver(older.version), semver(newer.version)
    if low is None or high is None or low >= high:
        detail = f"ISA {isa_id}: {older.version} listed before {newer.version}"
        raise ManifestRejected("isa_versions", detail)
    assert older.superseded_at is not None
    if older.accept_until is None or _t(older.accept_until) <= _t(older.superseded_at):
        raise ManifestRejected("isa_versions", f"ISA {isa_id} {older.version}: no grace window")
    if newer.superseded_at is not None and _t(newer.superseded_at) <= _t(older.superseded_at):
        raise ManifestRejected("isa_versions", f"ISA {isa_id}: superseded out of order")


def in_force(versions: Sequence[IsaEntry], moment: datetime) -> IsaEntry | None:
    """Rule 3: the version of one ISA in force at ``moment`` (None for no entries)."""
    chain = _chain(versions)
    for entry in chain:
        if entry.superseded_at is None or moment < _t(entry.superseded_at):
            return entry
    return None


def cited_entry(
    versions: Sequence[IsaEntry], version: str, sha256: str, *, sealed_at: datetime, now: datetime
) -> IsaEntry:
    """Rule 4: the entry a message cites, if the receiver accepts it; else ``EnvelopeRejected``
    (``isa_mismatch``, ``isa_superseded``, ``isa_version_unknown``). ``versions`` are the
    manifest's entries of the cited ISA id (at least one)."""
    entry = next((e for e in versions if e.version == version), None)
    if entry is None:
        raise _unlisted(versions, version)
    if entry.sha256 != sha256:
        raise EnvelopeRejected("isa_mismatch", f"ISA {entry.id} {version}: another sha256")
    if entry.superseded_at is None:
        return entry
    assert entry.accept_until is not None  # check_versions
    if sealed_at >= _t(entry.superseded_at) or now >= _t(entry.accept_until):
        raise EnvelopeRejected(
            "isa_superseded",
            f"ISA {entry.id} {version} was superseded at {entry.superseded_at} (accepted for"
            f" messages sealed before then, until {entry.accept_until}); this one was sealed"
            f" at {format_time(sealed_at)}",
        )
    return entry


def _unlisted(versions: Sequence[IsaEntry], version: str) -> EnvelopeRejected:
    current = next(e for e in versions if e.superseded_at is None)
    cited, newest = semver(version), semver(current.version)
    if cited is not None and newest is not None and cited < newest:
        detail = f"ISA {current.id} {version} is no longer listed ({current.version} is)"
        return EnvelopeRejected("isa_superseded", detail)
    return EnvelopeRejected(
        "isa_version_unknown",
        f"ISA {current.id} {version} is not in our manifest, whose newest is {current.version}",
    )


def load_documents(entries: Sequence[IsaEntry], agencies: Iterable[str]) -> dict[str, Isa]:
    """Rule 5: each carried document, loaded, by sha256; ``ManifestRejected`` on the first bad
    one. Entries without a document (format 1) are skipped."""
    known = sorted(agencies)
    loaded: dict[str, Isa] = {}
    for entry in entries:
        if entry.document is not None:
            loaded[entry.sha256] = _load_document(entry, entry.document, known)
    return loaded


def _load_document(entry: IsaEntry, document: str, known: list[str]) -> Isa:
    where = f"ISA {entry.id} {entry.version}"
    try:
        data = b64url_decode(document)
    except ValueError:
        raise ManifestRejected("isa_document_invalid", f"{where}: not base64url") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ManifestRejected(
            "isa_document_mismatch",
            f"{where}: the document hashes to {digest[:16]}..., the entry pins"
            f" {entry.sha256[:16]}...",
        )
    key = (digest, tuple(known))
    isa = _MEMO.get(key)
    if isa is None:
        try:
            isa = load_isa(f"manifest:{entry.id}@{entry.version}", data, known_agencies=known)
        except PolicyError as exc:
            raise ManifestRejected("isa_document_invalid", f"{where}: {exc.problems[0]}") from None
        _remember(key, isa)
    stated = entry_fields(isa)
    differs = [k for k, v in stated.items() if getattr(entry, k) != v]
    if differs:
        raise ManifestRejected(
            "isa_document_mismatch", f"{where}: the entry's {', '.join(differs)} differ"
        )
    return isa


_MEMO_SIZE = 64
_MEMO: dict[tuple[str, tuple[str, ...]], Isa] = {}


def _remember(key: tuple[str, tuple[str, ...]], isa: Isa) -> None:
    """Rule 6: keep the newest ``_MEMO_SIZE`` loads (the oldest goes first)."""
    _MEMO[key] = isa
    while len(_MEMO) > _MEMO_SIZE:
        try:
            _MEMO.pop(next(iter(_MEMO)), None)
        except (RuntimeError, StopIteration):  # another thread changed it meanwhile
            break


def registry_at(
    entries: Sequence[IsaEntry], loaded: Mapping[str, Isa], moment: datetime
) -> IsaRegistry:
    """The ISAs in force at ``moment`` (rule 3), one per id, with every other listed version
    held beside them (a receiver judges a message by the version it cites)."""
    current: list[Isa] = []
    for versions in _by_id(entries).values():
        entry = in_force(versions, moment)
        if entry is not None and entry.sha256 in loaded:
            current.append(loaded[entry.sha256])
    chosen = {isa.sha256 for isa in current}
    others = [isa for sha, isa in loaded.items() if sha not in chosen]
    return IsaRegistry(current, other_versions=others)
