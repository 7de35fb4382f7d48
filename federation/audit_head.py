"""Signed audit heads: an agency's audit-log head anchored outside its host, and the rules of
the witness that holds it (as certificate-transparency logs do with signed tree heads).

A hash chain and checkpoints on the same host cannot prove that the chain's tail was not cut:
whoever can write the file can delete the last entries and their checkpoints. So the agent
posts each signed head to a witness (``isa-broker serve``), and ``isa-agent audit verify``
checks the local log against the head the witness holds.

This module performs no I/O and reads no clock (``at`` is always an argument).

Rules:
1. A head ``{v, agency, seq, entry_hash, at, signer}`` says: the agency's audit log had entries
   ``1..seq`` ending in ``entry_hash`` (hex) at ``at``. It is signed with the agency's Ed25519
   signing key over ``b"isa-relay/v1 audit-head\\x00"`` followed by the canonical JSON of those
   six fields; ``signer`` = hex SHA-256 of the raw public key; ``sig`` = base64url (no padding).
2. A witness accepts a head only when (in this order): the agency is in its current manifest
   (``unknown_agency``) and not revoked (``revoked``); the head is signed by the key of that
   agency's certificate (``bad_signature``); its ``seq`` is not lower than the held one's
   (``rollback``); at the same ``seq`` its ``entry_hash`` is the held one's (``fork``). The same
   head again is accepted and changes nothing.
3. A local log agrees with a witness head when it reaches ``seq`` (else: it is BEHIND, its tail
   was cut) and its entry ``seq`` has ``entry_hash`` (else: it DISAGREES, history rewritten).
   An entry already removed by retention (at or before the anchor) is judged by the anchor.
4. Limit: the witness holds only the latest head, so it cannot tell a later head that rewrote
   history before its own ``seq`` (no consistency proof): the agent's local checkpoints and the
   chain cover that. Entries written after the last head the witness received can still be cut.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field

from federation.audit_chain import position_signed_by, sign_position
from federation.canonical import canonical_json
from federation.errors import AuditHeadRefused
from federation.keys import SigningKey, UtcTime
from federation.manifest import AgencyId, Manifest

__all__ = [
    "HEAD_TAG",
    "MAX_HEAD_BYTES",
    "AuditHead",
    "accept_head",
    "head_disagreement",
    "sign_head",
    "verify_head",
]

HEAD_TAG = b"isa-relay/v1 audit-head\x00"
MAX_HEAD_BYTES = 4096


class AuditHead(BaseModel):
    """A signed statement: the agency's log had ``seq`` entries ending in ``entry_hash``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    v: Literal[1] = 1
    agency: AgencyId
    seq: int = Field(ge=1)
    entry_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: UtcTime
    signer: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(max_length=200)

    def signed_bytes(self) -> bytes:
        """Exactly the bytes the signature covers (rule 1)."""
        return HEAD_TAG + canonical_json(self.model_dump(mode="json", exclude={"sig"}))


def sign_head(
    key: SigningKey, *, agency: str, seq: int, entry_hash: bytes, at: datetime
) -> AuditHead:
    signed = sign_position(key, HEAD_TAG, agency=agency, seq=seq, entry_hash=entry_hash, at=at)
    return AuditHead.model_validate(signed)


def verify_head(head: AuditHead, verify_key: VerifyKey) -> bool:
    """True if ``head`` is signed by ``verify_key`` and names it as its signer."""
    body = head.model_dump(mode="json", exclude={"sig"})
    return position_signed_by(HEAD_TAG, body, head.sig, verify_key)


def accept_head(held: AuditHead | None, offered: AuditHead, manifest: Manifest) -> bool:
    """The witness's rule 2: True if ``offered`` replaces ``held``, False if it is the same
    head again; raises :class:`AuditHeadRefused` otherwise."""
    # 1. a current, unrevoked agency of the federation
    if manifest.agency(offered.agency) is None:
        raise AuditHeadRefused("unknown_agency", f"{offered.agency} is not in the manifest")
    identity = manifest.signing_key_of(offered.agency)
    if identity is None or identity.revoked or manifest.is_revoked(offered.agency):
        raise AuditHeadRefused("revoked", f"{offered.agency} is revoked")
    # 2. signed by that agency's certified key
    if not verify_head(offered, identity.verify_key):
        raise AuditHeadRefused("bad_signature", f"not signed by {offered.agency}'s key")
    if held is None or offered.seq > held.seq:
        return True
    # 3. never backwards; 4. never two hashes for one seq
    if offered.seq < held.seq:
        raise AuditHeadRefused("rollback", f"seq {offered.seq} < held seq {held.seq}")
    if offered.entry_hash != held.entry_hash:
        raise AuditHeadRefused("fork", f"seq {held.seq} is held with another entry hash")
    return False


def head_disagreement(
    head: AuditHead, *, local_end: int, hash_at_seq: bytes | None, anchor_seq: int
) -> str | None:
    """Rule 3: why the local log contradicts the witness's ``head``, or None if it agrees.

    ``local_end`` is the local log's last seq, ``hash_at_seq`` its stored hash of entry
    ``head.seq`` (None if that entry is not there), ``anchor_seq`` the retention anchor's seq.
    """
    held = f"the witness holds entry {head.seq} with hash {head.entry_hash} (signed {head.at})"
    if local_end < head.seq:
        return f"{held}, but the local log ends at entry {local_end}: its tail was cut"
    if head.seq <= anchor_seq:
        return None  # removed by retention: the signed anchor covers it
    if hash_at_seq is None:
        return f"{held}, but the local log has no entry {head.seq}"
    if hash_at_seq.hex() != head.entry_hash:
        return f"{held}, but the local entry has hash {hash_at_seq.hex()}: history rewritten"
    return None
