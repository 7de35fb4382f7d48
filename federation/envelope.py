"""Envelope v1: seal and open the end-to-end encrypted, signed frame (docs/protocol.md).

This module performs no I/O and reads no clock. ``seal`` draws the randomness (ephemeral key,
nonce, UUIDv7 id) and calls ``seal_with``, which tests and known-answer vectors call directly.

Frame::

    magic "IRL1" | hlen u32 BE (<= 16 KiB) | header (canonical JSON) | clen u32 BE | ct | sig (64)

Rules:
1. ``shared = X25519(eph_secret, recipient_public)`` (all-zero refused); ``key = BLAKE2b(shared
   || eph_public || recipient_public, digest_size=32, person=b"isa-relay/v1 kdf")``; ``ct =
   XChaCha20-Poly1305-IETF(key, nonce, canonical JSON of the payload, AD = header bytes)``.
2. ``sig`` = Ed25519 by the sender over ``b"isa-relay/v1 envelope\\x00"`` + every byte before it.
3. ``open_envelope`` checks in the numbered order of its body and raises only
   ``EnvelopeRejected(reason)``: one opaque type, no oracle. The caller then checks the payload
   schema (``payload_invalid``) and the ISA's field rules (``isa_violation``).
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)
from nacl.exceptions import BadSignatureError, CryptoError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation import errors
from federation.canonical import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_time,
    parse_canonical,
)
from federation.keys import Keyring, SigningKey, UtcTime, kid
from federation.keys import utc as _t
from federation.manifest import Manifest

__all__ = [
    "ENVELOPE_TAG",
    "MAGIC",
    "MAX_CIPHERTEXT",
    "MAX_HEADER",
    "EnvelopeSpec",
    "Header",
    "IsaRef",
    "Opened",
    "Sealed",
    "envelope_sha256",
    "open_envelope",
    "peek_header",
    "seal",
    "seal_envelope",
    "seal_with",
    "uuid7",
]

MAGIC = b"IRL1"
ENVELOPE_TAG = b"isa-relay/v1 envelope\x00"
KDF_PERSON = b"isa-relay/v1 kdf"
MAX_HEADER = 16 * 1024
MAX_CIPHERTEXT = 1024 * 1024
SIG_LEN = 64
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
Time = UtcTime
AgencyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
Risk = Literal["standard", "medium", "high"]
UUID7 = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"


class IsaRef(BaseModel):
    """The ISA a message is sent under: id, version and hex SHA-256 of its YAML bytes."""

    model_config = _STRICT

    id: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=64)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Header(BaseModel):
    """The envelope header: routing and lawful-basis metadata, no personal data."""

    model_config = _STRICT

    v: Literal[1]
    id: Annotated[str, Field(pattern=UUID7)]
    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    sender: AgencyId = Field(alias="from")
    to: AgencyId
    isa: IsaRef
    purpose: str = Field(min_length=1, max_length=200)
    lawful_basis: dict[str, str | list[str]]
    risk: Risk
    handling: list[Annotated[str, Field(min_length=1, max_length=200)]]
    created_at: Time
    expires_at: Time
    sender_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    recipient_key: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    eph: Annotated[str, Field(min_length=43, max_length=43)]
    nonce: Annotated[str, Field(min_length=32, max_length=32)]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


@dataclass(frozen=True)
class EnvelopeSpec:
    """What the sender decides (after the ISA decision) before sealing."""

    type: str
    sender: str
    recipient: str
    isa: IsaRef
    purpose: str
    lawful_basis: dict[str, str | list[str]]
    risk: Risk
    handling: list[str]
    expires_at: datetime


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted envelope: the header view, its exact bytes, and the payload."""

    header: Header
    header_bytes: bytes
    payload: dict[str, Any]
    envelope_sha256: str

    @property
    def envelope_id(self) -> str:
        return self.header.id


def uuid7(now: datetime, rand: bytes) -> str:
    """A lowercase UUIDv7 from ``now`` (unix ms) and 10 random bytes."""
    if len(rand) != 10:
        raise ValueError("uuid7 needs 10 random bytes")
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    value = bytearray(ms.to_bytes(6, "big") + rand)
    value[6] = 0x70 | (value[6] & 0x0F)
    value[8] = 0x80 | (value[8] & 0x3F)
    h = value.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _kdf(shared: bytes, eph_public: bytes, recipient_public: bytes) -> bytes:
    digest = hashlib.blake2b(
        shared + eph_public + recipient_public, digest_size=32, person=KDF_PERSON
    )
    return digest.digest()


def _shared(secret: bytes, public: bytes) -> bytes:
    """X25519; an all-zero result (low-order point) is refused."""
    try:
        shared: bytes = crypto_scalarmult(secret, public)
    except (CryptoError, RuntimeError, TypeError, ValueError) as exc:
        raise errors.CryptoError("X25519 failed") from exc
    if not any(shared):
        raise errors.CryptoError("X25519 gave the all-zero shared secret")
    return shared


@dataclass(frozen=True)
class Sealed:
    """A sealed frame and its header (the sender needs both: no re-parse of its own frame)."""

    frame: bytes
    header: Header

    @property
    def ciphertext_length(self) -> int:
        hlen = int.from_bytes(self.frame[4:8], "big")
        return len(self.frame) - 12 - hlen - SIG_LEN


def seal(
    payload: dict[str, Any],
    spec: EnvelopeSpec,
    *,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
) -> bytes:
    """Seal ``payload`` (already minimised) for ``spec.recipient``; returns the frame bytes."""
    return seal_envelope(
        payload, spec, signing_key=signing_key, recipient_public=recipient_public, now=now
    ).frame


def seal_envelope(
    payload: dict[str, Any],
    spec: EnvelopeSpec,
    *,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
) -> Sealed:
    """:func:`seal`, also returning the header it signed."""
    randomness = os.urandom(66)  # one system call: ephemeral secret, nonce, UUIDv7 random bits
    return _seal(
        payload,
        spec,
        signing_key=signing_key,
        recipient_public=recipient_public,
        now=now,
        eph_secret=randomness[:32],
        nonce=randomness[32:56],
        envelope_id=uuid7(now, randomness[56:]),
    )


def seal_with(
    payload: dict[str, Any],
    spec: EnvelopeSpec,
    *,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
    eph_secret: bytes,
    nonce: bytes,
    envelope_id: str,
) -> bytes:
    """Seal with explicit randomness (the seam for tests and known-answer vectors)."""
    return _seal(
        payload,
        spec,
        signing_key=signing_key,
        recipient_public=recipient_public,
        now=now,
        eph_secret=eph_secret,
        nonce=nonce,
        envelope_id=envelope_id,
    ).frame


def _seal(
    payload: dict[str, Any],
    spec: EnvelopeSpec,
    *,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
    eph_secret: bytes,
    nonce: bytes,
    envelope_id: str,
) -> Sealed:
    if len(recipient_public) != 32 or len(eph_secret) != 32 or len(nonce) != 24:
        raise errors.CryptoError("wrong key, ephemeral secret or nonce length")
    eph_public: bytes = crypto_scalarmult_base(eph_secret)
    raw, header = _make_header(
        spec, signing_key, recipient_public, now, eph_public, nonce, envelope_id
    )
    header_bytes = canonical_json(raw)
    if len(header_bytes) > MAX_HEADER:
        raise errors.CryptoError("envelope header too large")
    key = _kdf(_shared(eph_secret, recipient_public), eph_public, recipient_public)
    ct: bytes = crypto_aead_xchacha20poly1305_ietf_encrypt(
        canonical_json(payload), header_bytes, nonce, key
    )
    body = MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes
    body += struct.pack(">I", len(ct)) + ct
    return Sealed(body + signing_key.sign(ENVELOPE_TAG + body).signature, header)


def _make_header(
    spec: EnvelopeSpec,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
    eph_public: bytes,
    nonce: bytes,
    envelope_id: str,
) -> tuple[dict[str, Any], Header]:
    """The header as a JSON-ready dict, and validated as a ``Header``."""
    raw: dict[str, Any] = {
        "v": 1,
        "id": envelope_id,
        "type": spec.type,
        "from": spec.sender,
        "to": spec.recipient,
        "isa": spec.isa.model_dump(),
        "purpose": spec.purpose,
        "lawful_basis": spec.lawful_basis,
        "risk": spec.risk,
        "handling": list(spec.handling),
        "created_at": format_time(now),
        "expires_at": format_time(spec.expires_at),
        "sender_key": hashlib.sha256(bytes(signing_key.verify_key)).hexdigest(),
        "recipient_key": kid(recipient_public),
        "eph": b64url_encode(eph_public),
        "nonce": b64url_encode(nonce),
    }
    try:
        header = Header.model_validate(raw)  # strict: no coercion, so raw IS the dump
    except ValidationError as exc:
        raise errors.CryptoError(f"invalid envelope header ({exc.error_count()} fields)") from exc
    if spec.expires_at <= now:
        raise errors.CryptoError("expires_at must be later than now")
    return raw, header


@dataclass(frozen=True)
class _Frame:
    header: Header
    header_bytes: bytes
    ct: bytes
    signed: bytes
    sig: bytes
    eph: bytes
    nonce: bytes


def _split(frame: bytes, max_ciphertext: int) -> _Frame:
    """Step 1: the frame's structure, lengths, canonical header and header fields."""
    if len(frame) < 12 + SIG_LEN or frame[:4] != MAGIC:
        raise errors.EnvelopeRejected("bad_frame")
    (hlen,) = struct.unpack(">I", frame[4:8])
    if hlen > MAX_HEADER or len(frame) < 12 + hlen + SIG_LEN:
        raise errors.EnvelopeRejected("bad_frame")
    (clen,) = struct.unpack(">I", frame[8 + hlen : 12 + hlen])
    if clen > max_ciphertext or clen < 16 or len(frame) != 12 + hlen + clen + SIG_LEN:
        raise errors.EnvelopeRejected("bad_frame")
    header_bytes = frame[8 : 8 + hlen]
    try:
        header = Header.model_validate(parse_canonical(header_bytes))
        created, expires = _t(header.created_at), _t(header.expires_at)
        eph, nonce = b64url_decode(header.eph), b64url_decode(header.nonce)
    except (ValueError, ValidationError) as exc:
        raise errors.EnvelopeRejected("bad_frame") from exc
    if expires <= created or len(eph) != 32 or len(nonce) != 24:
        raise errors.EnvelopeRejected("bad_frame")
    end = 12 + hlen + clen
    return _Frame(
        header, header_bytes, frame[12 + hlen : end], frame[:end], frame[end:], eph, nonce
    )


def peek_header(frame: bytes, *, max_ciphertext: int = MAX_CIPHERTEXT) -> Header:
    """The header of a well-formed frame, NOT authenticated: for routing and dedupe only."""
    return _split(frame, max_ciphertext).header


def envelope_sha256(frame: bytes) -> str:
    """Hex SHA-256 of the whole frame (what receipts cite)."""
    return hashlib.sha256(frame).hexdigest()


def open_envelope(
    frame: bytes,
    *,
    recipient: str,
    keyring: Keyring,
    manifest: Manifest,
    now: datetime,
    seen: Callable[[str], bool],
    max_skew: timedelta = timedelta(minutes=5),
    max_ciphertext: int = MAX_CIPHERTEXT,
) -> Opened:
    """Verify and decrypt ``frame`` for ``recipient`` or raise ``EnvelopeRejected(reason)``.

    ``seen(id)`` says whether this envelope id was already accepted; the caller records the id
    atomically with storing the delivery.
    """
    parts = _split(frame, max_ciphertext)  # 1. frame
    header = parts.header
    _check_sender(parts, manifest)  # 2. signature by a non-revoked key valid at created_at
    if header.to != recipient:  # 3. addressed to us
        raise errors.EnvelopeRejected("wrong_recipient")
    if now >= _t(header.expires_at):  # 4. not expired
        raise errors.EnvelopeRejected("expired")
    if _t(header.created_at) > now + max_skew:  # 5. clock skew
        raise errors.EnvelopeRejected("clock_skew")
    if seen(header.id):  # 6. not seen before
        raise errors.EnvelopeRejected("replay")
    _check_isa(header, manifest, now)  # 7. ISA known, matching, parties listed, active
    payload = _decrypt(parts, keyring, now)  # 8. decrypt
    return Opened(header, parts.header_bytes, payload, envelope_sha256(frame))


def _check_sender(parts: _Frame, manifest: Manifest) -> None:
    identity = manifest.signing_key_for(parts.header.sender_key)
    if identity is None:
        raise errors.EnvelopeRejected("unknown_sender")
    try:
        identity.verify_key.verify(ENVELOPE_TAG + parts.signed, parts.sig)
    except (BadSignatureError, ValueError) as exc:
        raise errors.EnvelopeRejected("bad_signature") from exc
    if identity.agency != parts.header.sender:
        raise errors.EnvelopeRejected("sender_mismatch")
    if identity.revoked:
        raise errors.EnvelopeRejected("sender_revoked")
    if not identity.valid_at(_t(parts.header.created_at)):
        raise errors.EnvelopeRejected("sender_key_expired")


def _check_isa(header: Header, manifest: Manifest, now: datetime) -> None:
    isa = manifest.isa(header.isa.id)
    if isa is None:
        raise errors.EnvelopeRejected("isa_unknown")
    if isa.version != header.isa.version or isa.sha256 != header.isa.sha256:
        raise errors.EnvelopeRejected("isa_mismatch")
    if header.sender not in isa.parties or header.to not in isa.parties:
        raise errors.EnvelopeRejected("isa_parties")
    if not isa.active_at(now):
        raise errors.EnvelopeRejected("isa_inactive")


def _decrypt(parts: _Frame, keyring: Keyring, now: datetime) -> dict[str, Any]:
    header = parts.header
    key = keyring.for_decrypt(header.recipient_key, now)  # key_unknown / key_retired
    try:
        shared = _shared(key.secret_bytes(), parts.eph)
        sym = _kdf(shared, parts.eph, key.public)
        plaintext: bytes = crypto_aead_xchacha20poly1305_ietf_decrypt(
            parts.ct, parts.header_bytes, parts.nonce, sym
        )
    except (errors.CryptoError, CryptoError, ValueError) as exc:
        raise errors.EnvelopeRejected("decrypt_failed") from exc
    try:
        payload = parse_canonical(plaintext)
    except ValueError as exc:
        raise errors.EnvelopeRejected("payload_invalid") from exc
    if not isinstance(payload, dict):
        raise errors.EnvelopeRejected("payload_invalid")
    return payload
