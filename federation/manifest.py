"""The signed federation manifest: agencies, their certificates and keys, ISAs, revocations.

This module performs no I/O and reads no clock: ``now`` is always an argument.

Rules:
1. A manifest file is the canonical JSON of ``{"format": "isa-relay-manifest/v1", "manifest":
   {...}, "signature": b64url, "signer_certificate": b64url DER}`` (one optional trailing LF).
   ``signature`` is Ed25519 by the manifest signer over ``b"isa-relay/v1 manifest\\x00"`` followed
   by the canonical JSON of the ``manifest`` object exactly as it appears in the file.
2. ``verify_manifest`` accepts a file only if, in this order: (1) it parses strictly; (2) the root
   matches the pinned fingerprint; (3) the signer certificate chains to it with the
   manifest-signing usage and is valid now; (4) the signature verifies; (5) the document
   validates; (6) its serial is strictly greater than the one held (no rollback); (7) it is issued
   and not expired; (8) every agency certificate chains to the root with the agency usage and
   names that agency, and every key announcement is signed by ITS OWN agency's certified key (the
   manifest operator cannot inject a key); ids, users and signing keys are unique and ISA parties
   are listed agencies; (9) every ISA document it carries matches its pin and loads (rule 8).
3. A held manifest past ``expires_at`` puts the holder in the **fail-closed** state
   (``TrustState``): stop sending, keep receiving into quarantine.
4. Refusals raise ``ManifestRejected(reason)``; the manifest already held stays in force.
5. A revoked agency (``revoked_at`` set, or a revocation of its id or certificate) is refused as
   a sender at any time: a compromised key could backdate ``created_at``.
6. Root rotation: ``also_trusted`` names further pinned roots, each a ``(certificate, pinned
   fingerprint)`` pair checked like the root (step 2); every certificate in steps 3 and 8 may
   chain to any pinned root (``pki.issuing_root``). Unpinning a root is how its overlap ends.
7. A revocation's ``reason`` starts with an RFC 5280 reason code (``REVOCATION_REASONS``),
   optionally followed by ``": "`` and a note; older free-text reasons read as ``unspecified``
   (``Revocation.code``). The document's shape is unchanged, so older agents still accept it.
   A revoked kid is never sealed to; an envelope already sealed to a revoked key of our own is
   refused unless the code is one of ``KEY_REVOCATIONS_KEEPING_GRACE`` (the key was retired,
   not exposed), when it still decrypts within its grace.
8. Document format ``v`` 2 (issue 15.5, ISA distribution) carries each listed ISA's YAML bytes
   (``IsaEntry.document``) and the earlier versions still in their grace window
   (``superseded_at``, ``accept_until``); format 1 has neither, and its agents read the ISAs
   from their own ``policies_dir``. Step 8 then checks the versions of each ISA
   (``federation.isa_entries`` rule 2) and a step 9 every document (its rule 5): a document
   that does not hash to its pin, or does not load, refuses the whole manifest. A verified
   format-2 manifest holds the loaded ISAs (:meth:`Manifest.isas_at`), so an agent takes a new
   ISA version with the manifest that carries it, without a restart. ``to_json`` writes a
   format-1 document with exactly the fields older agents know.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from cryptography import x509
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation import pki
from federation.canonical import b64url_decode, b64url_encode, canonical_json, parse_canonical
from federation.errors import ManifestRejected
from federation.isa import Isa, IsaRegistry
from federation.isa_entries import (
    IsaEntry,
    check_versions,
    in_force,
    load_documents,
    registry_at,
)
from federation.keys import KeyAnnouncement, SigningKey, UtcTime, verify_announcement
from federation.keys import utc as _t

__all__ = [
    "DOCUMENT_VERSIONS",
    "FORMAT",
    "KEY_REVOCATIONS_KEEPING_GRACE",
    "MANIFEST_TAG",
    "REVOCATION_REASONS",
    "AgencyEntry",
    "Anchor",
    "IsaEntry",
    "Manifest",
    "ManifestDocument",
    "Revocation",
    "SigningIdentity",
    "TrustState",
    "build_manifest",
    "diff_manifests",
    "reload_manifest",
    "unverified_document",
    "verify_manifest",
]

FORMAT = "isa-relay-manifest/v1"
DOCUMENT_VERSIONS = (1, 2)  # rule 8: 2 carries the ISA documents
_V2_ONLY = ("superseded_at", "accept_until", "document")
MANIFEST_TAG = b"isa-relay/v1 manifest\x00"
ISSUE_SKEW = timedelta(minutes=5)
_FILE_KEYS = {"format", "manifest", "signature", "signer_certificate"}
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
Time = UtcTime
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
AgencyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
Anchor = tuple[x509.Certificate, str]  # a root certificate and its pinned fingerprint (rule 6)


class AgencyEntry(BaseModel):
    """One agency: its certified signing key, its announced encryption keys, its broker user."""

    model_config = _STRICT

    id: AgencyId
    name: str = Field(min_length=1, max_length=200)
    certificate: str
    broker_user: str = Field(min_length=1, max_length=64)
    announcements: list[KeyAnnouncement] = Field(default_factory=list)
    revoked_at: Time | None = None


# RFC 5280 section 5.3.1 CRLReason names (removeFromCRL and the CA-only ones are meaningless here).
REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
KEY_REVOCATIONS_KEEPING_GRACE = frozenset(
    {"superseded", "cessationOfOperation", "affiliationChanged"}
)


class Revocation(BaseModel):
    """``kind`` agency: ``ref`` is the agency id; certificate: its fingerprint; key: a kid."""

    model_config = _STRICT

    kind: Literal["agency", "certificate", "key"]
    agency: AgencyId
    ref: str = Field(min_length=1, max_length=64)
    revoked_at: Time
    reason: str = Field(default="", max_length=200)

    @property
    def code(self) -> str:
        """Rule 6: the RFC 5280 reason code ``reason`` starts with, else ``unspecified``."""
        head = self.reason.split(":", 1)[0].strip()
        return head if head in REVOCATION_REASONS else "unspecified"


class ManifestDocument(BaseModel):
    """The signed content of a manifest (the ``manifest`` object of the file)."""

    model_config = _STRICT

    v: Literal[1, 2]
    serial: int = Field(ge=1)
    issued_at: Time
    expires_at: Time
    agencies: list[AgencyEntry]
    isas: list[IsaEntry]
    revocations: list[Revocation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _isas_fit_the_format(self) -> ManifestDocument:
        """Rule 8: format 1 has no documents and no superseded versions; format 2 carries a
        document for every entry, and a superseded one states its grace."""
        for entry in self.isas:
            if self.v == 1 and any(getattr(entry, f) is not None for f in _V2_ONLY):
                raise ValueError(f"ISA {entry.id}: format 1 carries no document or supersession")
            if self.v == 2 and entry.document is None:
                raise ValueError(f"ISA {entry.id} {entry.version}: no document")
            if (entry.superseded_at is None) != (entry.accept_until is None):
                raise ValueError(f"ISA {entry.id}: superseded_at and accept_until go together")
        return self

    def to_json(self) -> dict[str, Any]:
        body = self.model_dump(mode="json")
        if self.v == 1:  # exactly the fields agents before format 2 know
            for entry in body["isas"]:
                for name in _V2_ONLY:
                    del entry[name]
        return body


@dataclass(frozen=True)
class SigningIdentity:
    """An agency's certified Ed25519 key, as a receiver needs it to check a signature."""

    agency: str
    verify_key: VerifyKey
    not_before: datetime
    not_after: datetime
    revoked: bool
    fingerprint: str = ""  # hex SHA-256 of the certificate's DER

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


class Manifest:
    """A verified manifest: the document, the exact file bytes, and the lookups agents need."""

    def __init__(
        self,
        document: ManifestDocument,
        file_bytes: bytes,
        documents: Mapping[str, Isa] | None = None,
    ) -> None:
        self.document = document
        self.file_bytes = file_bytes
        self._agencies = {a.id: a for a in document.agencies}
        self._isas: dict[str, list[IsaEntry]] = {}
        for entry in document.isas:
            self._isas.setdefault(entry.id, []).append(entry)
        self._documents = dict(documents or {})
        self._registries: dict[tuple[str, ...], IsaRegistry] = {}
        self._revoked = {(r.kind, r.ref) for r in document.revocations}
        self._signers: dict[str, SigningIdentity] = {}
        for agency in document.agencies:
            cert = pki.certificate_from_bytes(b64url_decode(agency.certificate))
            key = pki.certificate_public_key(cert)
            revoked = self.is_revoked(agency.id) or ("certificate", pki.fingerprint(cert)) in (
                self._revoked
            )
            self._signers[hashlib.sha256(bytes(key)).hexdigest()] = SigningIdentity(
                agency.id, key, cert.not_valid_before_utc, cert.not_valid_after_utc, revoked,
                pki.fingerprint(cert),
            )  # fmt: skip

    @property
    def serial(self) -> int:
        return self.document.serial

    @property
    def expires_at(self) -> datetime:
        return _t(self.document.expires_at)

    def agency(self, agency_id: str) -> AgencyEntry | None:
        return self._agencies.get(agency_id)

    def isa(self, isa_id: str) -> IsaEntry | None:
        """The current (newest) entry of ISA ``isa_id``, if listed."""
        return next((e for e in self._isas.get(isa_id, ()) if e.superseded_at is None), None)

    def isa_versions(self, isa_id: str) -> list[IsaEntry]:
        """Every listed version of ISA ``isa_id`` (rule 8: format 2 may list earlier ones)."""
        return list(self._isas.get(isa_id, ()))

    def isa_in_force(self, isa_id: str, now: datetime) -> IsaEntry | None:
        """The version of ISA ``isa_id`` a sender seals under at ``now``
        (``federation.isa_entries`` rule 3)."""
        return in_force(self._isas.get(isa_id, ()), now)

    @property
    def carries_isas(self) -> bool:
        """Rule 8: True for format 2, whose ISAs come with it."""
        return self.document.v >= 2

    def isas_at(self, now: datetime) -> IsaRegistry | None:
        """The carried ISAs in force at ``now`` (with every other listed version beside them);
        None for a format-1 manifest, whose agents read their own ``policies_dir``."""
        if not self.carries_isas:
            return None
        entries = self.document.isas
        key = tuple(sorted(e.sha256 for i in self._isas.values() if (e := in_force(i, now))))
        registry = self._registries.get(key)
        if registry is None:
            registry = self._registries[key] = registry_at(entries, self._documents, now)
        return registry

    def is_revoked(self, agency_id: str) -> bool:
        entry = self._agencies.get(agency_id)
        if entry is None or entry.revoked_at is not None:
            return True
        return ("agency", agency_id) in self._revoked

    def revocation_of(
        self, kind: Literal["agency", "certificate", "key"], ref: str
    ) -> Revocation | None:
        """The revocation of ``ref`` (an agency id, a certificate fingerprint or a kid), if any."""
        return next((r for r in self.document.revocations if r.kind == kind and r.ref == ref), None)

    def signing_key_for(self, sha256_hex: str) -> SigningIdentity | None:
        """The identity whose raw Ed25519 key hashes to ``sha256_hex`` (a header sender_key)."""
        return self._signers.get(sha256_hex)

    def signing_key_of(self, agency_id: str) -> SigningIdentity | None:
        """The certified signing identity of ``agency_id`` (for receipts)."""
        return next((s for s in self._signers.values() if s.agency == agency_id), None)

    def current_encryption_key(self, agency_id: str, now: datetime) -> KeyAnnouncement | None:
        """The newest announcement of ``agency_id`` valid at ``now`` and not revoked, if any."""
        entry = self._agencies.get(agency_id)
        if entry is None or self.is_revoked(agency_id):
            return None
        usable = [
            a
            for a in entry.announcements
            if a.valid_at(now) and ("key", a.kid) not in self._revoked
        ]
        return max(usable, key=lambda a: (_t(a.not_before), a.kid), default=None)

    def __repr__(self) -> str:
        return f"Manifest(serial={self.serial}, expires_at={self.document.expires_at!r})"


def build_manifest(
    document: ManifestDocument, *, signer_key: SigningKey, signer_cert: x509.Certificate
) -> bytes:
    """Sign ``document`` and return the manifest file bytes (canonical JSON, trailing LF)."""
    body = document.to_json()
    signature = signer_key.sign(MANIFEST_TAG + canonical_json(body)).signature
    envelope = {
        "format": FORMAT,
        "manifest": body,
        "signature": b64url_encode(signature),
        "signer_certificate": b64url_encode(pki.certificate_to_der(signer_cert)),
    }
    return canonical_json(envelope) + b"\n"


def _parse_file(data: bytes) -> tuple[dict[str, Any], bytes, x509.Certificate]:
    """Step 1: strict parse; returns (manifest object, signature, signer certificate)."""
    try:
        outer = parse_canonical(data.removesuffix(b"\n"))
        if (
            not isinstance(outer, dict)
            or set(outer) != _FILE_KEYS
            or outer["format"] != FORMAT
            or not isinstance(outer["manifest"], dict)
        ):
            raise ValueError("bad structure")
        signature = b64url_decode(outer["signature"])
        cert_der = b64url_decode(outer["signer_certificate"])
    except (ValueError, TypeError) as exc:
        raise ManifestRejected("malformed") from exc
    return outer["manifest"], signature, pki.certificate_from_bytes(cert_der)


def _pinned_roots(anchors: Sequence[Anchor]) -> list[x509.Certificate]:
    """Step 2 for every pinned root (rule 6)."""
    for root_cert, pinned_fingerprint in anchors:
        pki.verify_root(root_cert, pinned_fingerprint)
    return [root_cert for root_cert, _ in anchors]


def _verify_signed(
    data: bytes, anchors: Sequence[Anchor], now: datetime | None
) -> tuple[ManifestDocument, list[x509.Certificate]]:
    body, signature, signer_cert = _parse_file(data)  # 1
    roots = _pinned_roots(anchors)  # 2
    try:  # 3
        pki.verify_certificate(
            signer_cert,
            pki.issuing_root(signer_cert, roots),
            now,
            role=pki.CertificateRole.MANIFEST_SIGNER,
        )
    except ManifestRejected as exc:
        raise ManifestRejected("signer_untrusted", exc.reason) from exc
    try:  # 4
        pki.certificate_public_key(signer_cert).verify(
            MANIFEST_TAG + canonical_json(body), signature
        )
    except (BadSignatureError, ValueError) as exc:
        raise ManifestRejected("bad_signature") from exc
    try:  # 5
        return ManifestDocument.model_validate(body), roots
    except ValidationError as exc:
        raise ManifestRejected("malformed", f"{exc.error_count()} invalid fields") from exc


def _check_agencies(document: ManifestDocument, roots: Sequence[x509.Certificate]) -> None:
    """Step 8: certificates, announcements by their own agency, uniqueness, ISA parties."""
    seen_users: set[str] = set()
    seen_keys: set[bytes] = set()
    for agency in document.agencies:
        cert = pki.certificate_from_bytes(b64url_decode(agency.certificate))
        if pki.verify_certificate(cert, pki.issuing_root(cert, roots), None) != agency.id:
            raise ManifestRejected("certificate_subject", agency.id)
        key = pki.certificate_public_key(cert)
        if agency.broker_user in seen_users or bytes(key) in seen_keys:
            raise ManifestRejected("duplicate", agency.id)
        seen_users.add(agency.broker_user)
        seen_keys.add(bytes(key))
        for announcement in agency.announcements:
            if announcement.agency != agency.id:
                raise ManifestRejected("announcement_invalid", agency.id)
            verify_announcement(announcement, key)
    ids = [a.id for a in document.agencies]
    if len(set(ids)) != len(ids):
        raise ManifestRejected("duplicate")
    if document.v == 1 and len({i.id for i in document.isas}) != len(document.isas):
        raise ManifestRejected("duplicate")
    check_versions(document.isas)  # rule 8: one current version per ISA, in order
    if any(p not in ids for isa in document.isas for p in isa.parties):
        raise ManifestRejected("isa_party_unknown")


def _load_isas(document: ManifestDocument) -> dict[str, Isa]:
    """Step 9 (rule 8): every carried document, loaded and linted, by sha256."""
    return load_documents(document.isas, [a.id for a in document.agencies])


def verify_manifest(
    data: bytes,
    *,
    root_cert: x509.Certificate,
    pinned_fingerprint: str,
    now: datetime,
    current_serial: int,
    also_trusted: Sequence[Anchor] = (),
) -> Manifest:
    """Verify a manifest file (rule 2); ``current_serial`` is the serial held (0 if none);
    ``also_trusted`` the further pinned roots of a root rotation (rule 6)."""
    anchors = [(root_cert, pinned_fingerprint), *also_trusted]
    document, roots = _verify_signed(data, anchors, now)  # 1-5
    if document.serial <= current_serial:  # 6
        raise ManifestRejected("rollback", f"serial {document.serial} <= {current_serial}")
    if _t(document.issued_at) > now + ISSUE_SKEW:  # 7
        raise ManifestRejected("not_yet_valid")
    if now >= _t(document.expires_at):
        raise ManifestRejected("expired")
    try:
        _check_agencies(document, roots)  # 8
    except ValueError as exc:
        raise ManifestRejected("malformed") from exc
    return Manifest(document, data, _load_isas(document))  # 9


def unverified_document(data: bytes) -> ManifestDocument:
    """UNVERIFIED: the document inside a manifest file, for display (``isa-broker manifest show``).

    Nothing here is checked but the format; never use the result to make a trust decision.
    """
    body, _signature, _cert = _parse_file(data)
    try:
        return ManifestDocument.model_validate(body)
    except ValidationError as exc:
        raise ManifestRejected("malformed", f"{exc.error_count()} invalid fields") from exc


def reload_manifest(
    data: bytes,
    *,
    root_cert: x509.Certificate,
    pinned_fingerprint: str,
    also_trusted: Sequence[Anchor] = (),
) -> Manifest:
    """Re-load a manifest this agent accepted earlier (from its own disk) after a restart.

    Checks chain, signature and content but neither serial nor expiry: an expired held manifest
    must still load so that ``TrustState`` can report fail-closed.
    """
    document, roots = _verify_signed(data, [(root_cert, pinned_fingerprint), *also_trusted], None)
    try:
        _check_agencies(document, roots)
    except ValueError as exc:
        raise ManifestRejected("malformed") from exc
    return Manifest(document, data, _load_isas(document))


@dataclass(frozen=True)
class TrustState:
    """Whether a held manifest lets us send at ``now``: ``valid``, ``fail_closed`` or ``none``."""

    manifest: Manifest | None

    def status(self, now: datetime) -> Literal["valid", "fail_closed", "none"]:
        if self.manifest is None:
            return "none"
        return "valid" if now < self.manifest.expires_at else "fail_closed"

    def can_send(self, now: datetime) -> bool:
        return self.status(now) == "valid"

    def accept(
        self,
        data: bytes,
        *,
        root_cert: x509.Certificate,
        pinned_fingerprint: str,
        now: datetime,
        also_trusted: Sequence[Anchor] = (),
    ) -> TrustState:
        """Verify a newer manifest against the one held; the new state, or ``ManifestRejected``."""
        held = 0 if self.manifest is None else self.manifest.serial
        fresh = verify_manifest(
            data,
            root_cert=root_cert,
            pinned_fingerprint=pinned_fingerprint,
            now=now,
            current_serial=held,
            also_trusted=also_trusted,
        )
        return TrustState(fresh)


def _agency_lines(old: AgencyEntry, new: AgencyEntry) -> list[str]:
    lines = []
    for field in ("name", "broker_user", "certificate", "revoked_at"):
        if getattr(old, field) != getattr(new, field):
            shown = "changed" if field == "certificate" else f"{getattr(old, field)!r} -> "
            shown += "" if field == "certificate" else repr(getattr(new, field))
            lines.append(f"agency {new.id}: {field} {shown}")
    old_kids = {a.kid: a for a in old.announcements}
    new_kids = {a.kid: a for a in new.announcements}
    lines += [
        f"agency {new.id}: + key {k} ({a.not_before} .. {a.not_after})"
        for k, a in new_kids.items()
        if k not in old_kids
    ]
    lines += [f"agency {new.id}: - key {k}" for k in old_kids if k not in new_kids]
    return lines


def _isa_lines(old: IsaEntry, new: IsaEntry) -> list[str]:
    fields = ("version", "sha256", "status", "parties", "effective_from", "effective_to")
    return [
        f"isa {new.id}: {f} {getattr(old, f)!r} -> {getattr(new, f)!r}"
        for f in fields
        if getattr(old, f) != getattr(new, f)
    ]


def _superseded_lines(old: ManifestDocument, new: ManifestDocument) -> list[str]:
    """Rule 8: earlier versions newly listed as superseded, and those whose grace ended."""
    before = {(x.id, x.version) for x in old.isas if x.superseded_at is not None}
    after = {(x.id, x.version): x for x in new.isas if x.superseded_at is not None}
    lines = [
        f"isa {x.id}: v{x.version} superseded at {x.superseded_at}, accepted until {x.accept_until}"
        for key, x in after.items()
        if key not in before
    ]
    return lines + [f"isa {i}: v{v} no longer accepted" for i, v in before if (i, v) not in after]


def diff_manifests(old: ManifestDocument, new: ManifestDocument) -> list[str]:
    """Readable lines saying what changed between two manifests (empty when equal)."""
    lines = [f"serial {old.serial} -> {new.serial}"] if old.serial != new.serial else []
    if old.expires_at != new.expires_at:
        lines.append(f"expires_at {old.expires_at} -> {new.expires_at}")
    old_a, new_a = {a.id: a for a in old.agencies}, {a.id: a for a in new.agencies}
    lines += [f"+ agency {i} ({a.name})" for i, a in new_a.items() if i not in old_a]
    lines += [f"- agency {i}" for i in old_a if i not in new_a]
    for i in (i for i in new_a if i in old_a):
        lines += _agency_lines(old_a[i], new_a[i])
    old_i = {x.id: x for x in old.isas if x.superseded_at is None}
    new_i = {x.id: x for x in new.isas if x.superseded_at is None}
    lines += [f"+ isa {i} v{x.version} ({x.status})" for i, x in new_i.items() if i not in old_i]
    lines += [f"- isa {i}" for i in old_i if i not in new_i]
    for i in (i for i in new_i if i in old_i):
        lines += _isa_lines(old_i[i], new_i[i])
    lines += _superseded_lines(old, new)
    old_r = set(old.revocations)
    lines += [
        f"+ revocation {r.kind} {r.ref} of {r.agency} at {r.revoked_at}"
        for r in new.revocations
        if r not in old_r
    ]
    return lines
