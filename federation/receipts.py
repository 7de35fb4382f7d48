"""Signed delivery receipts: ``IRR1`` frames saying delivered or rejected (with a reason).

This module performs no I/O and reads no clock (``at`` is an argument).

Frame::

    magic "IRR1" | len u32 BE (<= 16 KiB) | body (canonical JSON) | sig (64)

Rules:
1. The body is ``{v, envelope_id, envelope_sha256, from, to, status, reason, at}``: ``from`` is
   the agency issuing the receipt (the envelope's recipient), ``to`` the envelope's sender,
   ``envelope_sha256`` the hex SHA-256 of the whole envelope frame, ``status`` ``delivered`` (with
   ``reason`` null) or ``rejected`` (with a reason code). No personal data; not encrypted.
2. ``sig`` is Ed25519 by ``from``'s certified signing key over ``b"isa-relay/v1 receipt\\x00"``
   followed by every byte before it. The frame ends exactly after ``sig``.
3. ``verify_receipt`` and ``accept_receipt`` raise only ``ReceiptRejected(reason)``.
4. The sender MUST refuse a verified receipt unless (``accept_receipt``, in this order): its
   ``to`` is the sender (``not_for_us``), its ``from`` is the agency the envelope was sent to
   (``unexpected_issuer``: another agency can sign a receipt for a copy it was handed, e.g.
   ``wrong_recipient``), and its ``envelope_sha256`` is the hash of the frame the sender sent
   (``envelope_mismatch``). A refused receipt changes nothing.
5. A rejection's reason is either about the frame (final for the sender: any copy of it meets
   the same fate) or about how one copy arrived (``ARRIVAL_REASONS``: ``transport_identity``, a
   copy published by someone other than its sender; ``replay``, a copy of an id already
   accepted). Anyone able to read a queue can republish a frame, so an arrival rejection never
   settles the message; it is the ``copy_rejected`` event (``federation.outbox`` rule 7).
6. The frame's hash is checked while the sender holds the frame. Retention deletes it only once
   the message is delivered, which is final, so a receipt for it then changes nothing and the
   caller passes ``sent_sha256=None``.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Annotated, Final, Literal

from nacl.exceptions import BadSignatureError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation.canonical import canonical_json, format_time, parse_canonical
from federation.errors import CryptoError, ReceiptRejected
from federation.keys import SigningKey, UtcTime
from federation.manifest import Manifest
from federation.outbox import Event

__all__ = [
    "ARRIVAL_REASONS",
    "MAX_RECEIPT",
    "RECEIPT_MAGIC",
    "RECEIPT_TAG",
    "Receipt",
    "accept_receipt",
    "make_receipt",
    "receipt_event",
    "verify_receipt",
]

RECEIPT_MAGIC = b"IRR1"
RECEIPT_TAG = b"isa-relay/v1 receipt\x00"
MAX_RECEIPT = 16 * 1024
SIG_LEN = 64
AgencyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
#: Rejection reasons about how one copy of a frame arrived, not about the frame (rule 5).
ARRIVAL_REASONS: Final = frozenset({"transport_identity", "replay"})
UUID7 = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


class Receipt(BaseModel):
    """A verified receipt body."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    v: Literal[1]
    envelope_id: Annotated[str, Field(pattern=UUID7)]
    envelope_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    issuer: AgencyId = Field(alias="from")
    to: AgencyId
    status: Literal["delivered", "rejected"]
    reason: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] | None
    at: UtcTime


def make_receipt(
    *,
    envelope_id: str,
    envelope_sha256: str,
    issuer: str,
    to: str,
    status: Literal["delivered", "rejected"],
    reason: str | None,
    at: datetime,
    signing_key: SigningKey,
) -> bytes:
    """Sign a receipt for an envelope we (``issuer``) received from ``to``."""
    raw = {
        "v": 1,
        "envelope_id": envelope_id,
        "envelope_sha256": envelope_sha256,
        "from": issuer,
        "to": to,
        "status": status,
        "reason": reason,
        "at": format_time(at),
    }
    try:
        Receipt.model_validate(raw)
    except ValidationError as exc:
        raise CryptoError(f"invalid receipt ({exc.error_count()} fields)") from exc
    if (status == "delivered") != (reason is None):
        raise CryptoError("a delivered receipt has no reason; a rejected one must have one")
    body = canonical_json(raw)
    signed = RECEIPT_MAGIC + struct.pack(">I", len(body)) + body
    return signed + signing_key.sign(RECEIPT_TAG + signed).signature


def _split(frame: bytes) -> tuple[Receipt, bytes, bytes]:
    if len(frame) < 8 + SIG_LEN or frame[:4] != RECEIPT_MAGIC:
        raise ReceiptRejected("bad_frame")
    (length,) = struct.unpack(">I", frame[4:8])
    if length > MAX_RECEIPT or len(frame) != 8 + length + SIG_LEN:
        raise ReceiptRejected("bad_frame")
    try:
        receipt = Receipt.model_validate(parse_canonical(frame[8 : 8 + length]))
    except (ValueError, ValidationError) as exc:
        raise ReceiptRejected("bad_frame") from exc
    if (receipt.status == "delivered") != (receipt.reason is None):
        raise ReceiptRejected("bad_frame")
    return receipt, frame[: 8 + length], frame[8 + length :]


def verify_receipt(
    frame: bytes, *, manifest: Manifest, expected_from: str | None = None
) -> Receipt:
    """Check the frame, the issuer's certified key in ``manifest`` and the signature."""
    receipt, signed, sig = _split(frame)
    if expected_from is not None and receipt.issuer != expected_from:
        raise ReceiptRejected("unexpected_issuer")
    identity = manifest.signing_key_of(receipt.issuer)
    if identity is None:
        raise ReceiptRejected("unknown_issuer")
    try:
        identity.verify_key.verify(RECEIPT_TAG + signed, sig)
    except (BadSignatureError, ValueError) as exc:
        raise ReceiptRejected("bad_signature") from exc
    if identity.revoked:
        raise ReceiptRejected("issuer_revoked")
    return receipt


def receipt_event(status: Literal["delivered", "rejected"], reason: str | None) -> Event:
    """The outbox event an accepted receipt is: delivered, rejected, or a copy rejected (rule 5)."""
    if status == "delivered":
        return Event.RECEIPT_DELIVERED
    return Event.COPY_REJECTED if reason in ARRIVAL_REASONS else Event.RECEIPT_REJECTED


def accept_receipt(
    receipt: Receipt, *, sender: str, sent_to: str, sent_sha256: str | None
) -> Event:
    """Apply rule 4 to a verified receipt for an envelope ``sender`` sent to ``sent_to``."""
    if receipt.to != sender:
        raise ReceiptRejected("not_for_us")
    if receipt.issuer != sent_to:
        raise ReceiptRejected("unexpected_issuer")
    if sent_sha256 is not None and receipt.envelope_sha256 != sent_sha256:
        raise ReceiptRejected("envelope_mismatch")
    return receipt_event(receipt.status, receipt.reason)
