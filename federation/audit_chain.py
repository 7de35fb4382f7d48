"""The audit log's chain: entry form, chain hash, signed checkpoints, first-broken-link search.

This module performs no I/O and reads no clock (``at`` is always an argument).

Rules:
1. An entry is a strict model; its bytes are ``canonical_json`` of its fields. It carries field
   PATHS and reasons and keyed subject hashes, never a value of a referral.
   Version 2 (:data:`V2_FIELDS`) adds the person accountable (``actor_id``, ``actor_role``:
   required; ``system:<name>`` / ``system`` when nobody was named), their ``justification``
   and the generalised paths (``fields_altered``); ``actor`` stays the system that acted (the
   API client, or ``agent``). A version 1 entry (written before) has none of these keys: its
   bytes leave them out, so every old entry still verifies, and a v1 entry that carries one is
   not a valid entry.
2. ``entry_hash = SHA-256(prev_hash || entry_bytes)``; the first entry's ``prev_hash`` is 32 zero
   bytes (``GENESIS``), or the entry hash of the anchor checkpoint once older entries were
   removed by retention.
3. A checkpoint ``{v, agency, seq, entry_hash, at, signer}`` is signed with the agency's Ed25519
   signing key over ``b"isa-relay/v1 audit-checkpoint\\x00"`` followed by its canonical JSON
   (``signer`` = hex SHA-256 of the raw public key). It pins the whole chain up to ``seq``:
   rewriting history and recomputing every hash still breaks the next checkpoint.
4. ``first_break`` walks the entries in stored order and names the FIRST entry that is wrong:
   its sequence number and what is wrong (altered, missing before it, out of order, inserted,
   not matching a checkpoint, or entries missing after the last one a checkpoint covers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Self

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation.canonical import b64url_decode, b64url_encode, canonical_json, format_time
from federation.keys import SigningKey, UtcTime

__all__ = [
    "CHECKPOINT_TAG",
    "GENESIS",
    "V2_FIELDS",
    "AlteredField",
    "AuditEntry",
    "Break",
    "Checkpoint",
    "StoredEntry",
    "WithheldField",
    "chain_hash",
    "entry_bytes",
    "first_break",
    "position_signed_by",
    "sign_checkpoint",
    "sign_position",
    "verify_checkpoint",
]

CHECKPOINT_TAG = b"isa-relay/v1 audit-checkpoint\x00"
GENESIS = bytes(32)
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
Hex64 = Field(pattern=r"^[0-9a-f]{64}$")


class WithheldField(BaseModel):
    model_config = _STRICT
    path: str
    reason: str


class AlteredField(BaseModel):
    """A field generalised before it was shared: its path and how (``age_band`` ...)."""

    model_config = _STRICT
    path: str
    how: str


#: Rule 1: the keys a version 2 entry adds (a version 1 entry has none of them).
V2_FIELDS = ("actor_id", "actor_role", "justification", "fields_altered")


class AuditEntry(BaseModel):
    """One audit record (rule 1). ``at`` is the canonical UTC time; ``seq`` starts at 1."""

    model_config = _STRICT
    v: Literal[1, 2] = 1
    seq: int = Field(ge=1)
    at: UtcTime
    agency: str
    action: str
    actor: str
    message_id: str | None = None
    counterparty: str | None = None
    isa_id: str | None = None
    isa_version: str | None = None
    purpose: str | None = None
    message_type: str | None = None
    risk: str | None = None
    lawful_basis: dict[str, object] = {}
    outcome: str | None = None
    fields_shared: tuple[str, ...] = ()
    fields_withheld: tuple[WithheldField, ...] = ()
    detail: str = ""
    subject_keys: tuple[str, ...] = ()
    actor_id: str | None = None
    actor_role: str | None = None
    justification: str | None = None
    fields_altered: tuple[AlteredField, ...] = ()

    @model_validator(mode="after")
    def _fields_of_its_version(self) -> Self:
        """Rule 1: v2 names the person accountable; v1 has no v2 field."""
        if self.v == 2 and (self.actor_id is None or self.actor_role is None):
            raise ValueError("a version 2 entry names its actor_id and actor_role")
        if self.v == 1 and any(getattr(self, name) for name in V2_FIELDS):
            raise ValueError("a version 1 entry has no " + ", ".join(V2_FIELDS))
        return self


def entry_bytes(entry: AuditEntry) -> bytes:
    """The canonical bytes of ``entry``, which are chained (rule 1: v1 without the v2 keys)."""
    data = entry.model_dump(mode="json")
    if entry.v == 1:
        for name in V2_FIELDS:
            del data[name]
    return canonical_json(data)


def chain_hash(prev_hash: bytes, data: bytes) -> bytes:
    """``SHA-256(prev_hash || data)`` (rule 2)."""
    if len(prev_hash) != 32:
        raise ValueError("a chain hash is 32 bytes")
    return hashlib.sha256(prev_hash + data).digest()


class Checkpoint(BaseModel):
    """A signed statement: the chain up to ``seq`` ends in ``entry_hash`` (rule 3)."""

    model_config = _STRICT
    v: Literal[1] = 1
    agency: str
    seq: int = Field(ge=0)
    entry_hash: str = Hex64
    at: UtcTime
    signer: str = Hex64
    sig: str

    def body(self) -> dict[str, object]:
        return self.model_dump(exclude={"sig"})


def sign_position(
    key: SigningKey, tag: bytes, *, agency: str, seq: int, entry_hash: bytes, at: datetime
) -> dict[str, object]:
    """A signed statement "``agency``'s log had ``entry_hash`` at ``seq``", as a JSON object:
    the body ``{v, agency, seq, entry_hash, at, signer}`` and its Ed25519 ``sig`` over ``tag``
    followed by the body's canonical JSON. Checkpoints and witnessed heads differ only in
    ``tag``."""
    body: dict[str, object] = {
        "v": 1,
        "agency": agency,
        "seq": seq,
        "entry_hash": entry_hash.hex(),
        "at": format_time(at),
        "signer": key.key_id,
    }
    signature = key.sign(tag + canonical_json(body)).signature
    return {**body, "sig": b64url_encode(signature)}


def position_signed_by(
    tag: bytes, body: dict[str, object], sig: str, verify_key: VerifyKey
) -> bool:
    """True if ``sig`` is ``verify_key``'s signature of ``tag`` + ``body`` and the body names
    that key as its ``signer`` (see :func:`sign_position`)."""
    if hashlib.sha256(bytes(verify_key)).hexdigest() != body.get("signer"):
        return False
    try:
        verify_key.verify(tag + canonical_json(body), b64url_decode(sig))
    except (ValueError, BadSignatureError):
        return False
    return True


def sign_checkpoint(
    key: SigningKey, *, agency: str, seq: int, entry_hash: bytes, at: datetime
) -> Checkpoint:
    signed = sign_position(key, CHECKPOINT_TAG, agency=agency, seq=seq, entry_hash=entry_hash,
                           at=at)  # fmt: skip
    return Checkpoint.model_validate(signed)


def verify_checkpoint(checkpoint: Checkpoint, verify_key: VerifyKey) -> bool:
    """True if ``checkpoint`` is signed by ``verify_key`` (and names it as signer)."""
    return position_signed_by(CHECKPOINT_TAG, checkpoint.body(), checkpoint.sig, verify_key)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as the log stores it: its row number, its bytes and the hash stored with it."""

    seq: int
    data: bytes
    entry_hash: bytes


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken entry (``seq``) and what is wrong with it."""

    seq: int
    problem: str


def _check_entry(stored: StoredEntry, expected_seq: int, prev: bytes) -> str | None:
    try:
        entry = AuditEntry.model_validate_json(stored.data)
    except ValidationError:
        return "entry is not a valid audit entry"
    if entry_bytes(entry) != stored.data:
        return "entry bytes are not canonical (altered)"
    if entry.seq != stored.seq:
        return f"entry claims sequence number {entry.seq} (moved or reordered)"
    if stored.seq < expected_seq:
        return f"entry out of order or inserted (expected {expected_seq})"
    if stored.seq > expected_seq:
        return f"entries {expected_seq}..{stored.seq - 1} are missing (deleted)"
    if chain_hash(prev, stored.data) != stored.entry_hash:
        return (
            "hash does not match its content and the previous entry (altered, inserted or deleted)"
        )
    return None


def first_break(
    entries: Iterable[StoredEntry],
    checkpoints: Sequence[Checkpoint],
    verify_key: VerifyKey,
    *,
    anchor: Checkpoint | None = None,
) -> Break | None:
    """The first broken entry, or None if the chain and every checkpoint hold (rule 4)."""
    if anchor is not None and not verify_checkpoint(anchor, verify_key):
        return Break(anchor.seq, "the anchor checkpoint's signature is invalid")
    prev = GENESIS if anchor is None else bytes.fromhex(anchor.entry_hash)
    expected = 1 if anchor is None else anchor.seq + 1
    pinned = {}
    for cp in checkpoints:
        if not verify_checkpoint(cp, verify_key):
            return Break(cp.seq, f"checkpoint at entry {cp.seq} has an invalid signature")
        pinned[cp.seq] = bytes.fromhex(cp.entry_hash)
    for stored in entries:
        problem = _check_entry(stored, expected, prev)
        if problem is not None:
            return Break(stored.seq, problem)
        if stored.seq in pinned and pinned[stored.seq] != stored.entry_hash:
            return Break(stored.seq, "does not match the signed checkpoint (history rewritten)")
        prev, expected = stored.entry_hash, expected + 1
    beyond = [seq for seq in pinned if seq >= expected]
    if beyond:
        return Break(expected, f"entries {expected}..{max(beyond)} are missing (truncated)")
    return None
