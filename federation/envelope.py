"""Envelopes v1 and v2: seal and open the end-to-end encrypted, signed frame (docs/protocol.md).

This module performs no I/O and reads no clock. ``seal`` draws the randomness (ephemeral key,
nonce, UUIDv7 id) and calls ``seal_with``, which tests and known-answer vectors call directly.

Frame (the magic decides the version, and the header's ``v`` must agree with it)::

    magic "IRL1"|"IRL2" | hlen u32 BE (<= 16 KiB) | header (canonical JSON) | clen u32 BE | ct | sig

Rules:
1. The cleartext header of v2 is only the :class:`Routing` fields (what routing, verification
   and replay protection need before decryption). The :class:`Meta` fields (type, ISA, purpose,
   lawful basis, risk, handling) are sealed inside the ciphertext: plaintext = canonical JSON of
   ``{"meta": {...}, "payload": {...}}``. v1 carries both in clear and seals the bare payload.
2. ``shared = X25519(eph_secret, recipient_public)`` (all-zero refused); ``key = BLAKE2b(shared
   || eph_public || recipient_public, digest_size=32, person=b"isa-relay/v1 kdf")``; ``ct =
   XChaCha20-Poly1305-IETF(key, nonce, plaintext, AD = header bytes)``, for both versions.
3. ``sig`` = Ed25519 by the sender over ``b"isa-relay/v1 envelope\\x00"`` + every byte before it.
4. This module reads both versions: :func:`parse_frame` is the receiver's step 1 and
   :func:`decrypt_frame` its step 7, each raising only ``EnvelopeRejected(reason)``: one opaque
   type, no oracle. The receiver's checks, in their one numbered order, are
   ``federation.receive`` (docs/protocol.md section 6).
5. ``seal`` writes v2 unless told ``version=1`` (a sender's transition setting).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)
from nacl.exceptions import CryptoError
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

__all__ = [
    "ENVELOPE_TAG",
    "MAGIC_V1",
    "MAGIC_V2",
    "MAX_CIPHERTEXT",
    "MAX_HEADER",
    "EnvelopeSpec",
    "Frame",
    "Header",
    "IsaRef",
    "Meta",
    "Opened",
    "Routing",
    "Sealed",
    "WireVersion",
    "decrypt_frame",
    "envelope_sha256",
    "parse_frame",
    "peek_header",
    "seal",
    "seal_envelope",
    "seal_with",
    "uuid7",
]

WireVersion = Literal[1, 2]
MAGIC_V1 = b"IRL1"
MAGIC_V2 = b"IRL2"
_MAGICS: dict[WireVersion, bytes] = {1: MAGIC_V1, 2: MAGIC_V2}
_VERSIONS: dict[bytes, WireVersion] = {MAGIC_V1: 1, MAGIC_V2: 2}
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


class Routing(BaseModel):
    """What a receiver needs before decrypting (routing, signature, expiry, replay): v2's whole
    cleartext header, and the part of v1's. No personal data, nothing about the referral."""

    model_config = _STRICT

    v: WireVersion
    id: Annotated[str, Field(pattern=UUID7)]
    sender: AgencyId = Field(alias="from")
    to: AgencyId
    created_at: Time
    expires_at: Time
    sender_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    recipient_key: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    eph: Annotated[str, Field(min_length=43, max_length=43)]
    nonce: Annotated[str, Field(min_length=32, max_length=32)]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


class Meta(BaseModel):
    """What the message is and the terms it is shared under: in clear in v1, sealed in v2."""

    model_config = _STRICT

    type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    isa: IsaRef
    purpose: str = Field(min_length=1, max_length=200)
    lawful_basis: dict[str, str | list[str]]
    risk: Risk
    handling: list[Annotated[str, Field(min_length=1, max_length=200)]]


class Header(Routing, Meta):
    """The whole header once verified: routing and meta (v1's cleartext header; for v2 the
    cleartext routing joined with the meta decrypted from the ciphertext)."""


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
    """A verified, decrypted envelope: the whole header, its cleartext bytes, and the payload."""

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
    """A sealed frame and its whole header, meta included (the sender keeps both: its status,
    audit and history read the meta from here, never by re-parsing or decrypting the frame)."""

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
    version: WireVersion = 2,
) -> bytes:
    """Seal ``payload`` (already minimised) for ``spec.recipient``; returns the frame bytes."""
    return seal_envelope(
        payload,
        spec,
        signing_key=signing_key,
        recipient_public=recipient_public,
        now=now,
        version=version,
    ).frame


def seal_envelope(
    payload: dict[str, Any],
    spec: EnvelopeSpec,
    *,
    signing_key: SigningKey,
    recipient_public: bytes,
    now: datetime,
    version: WireVersion = 2,
) -> Sealed:
    """:func:`seal`, also returning the header it signed (with the meta it sealed)."""
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
        version=version,
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
    version: WireVersion = 2,
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
        version=version,
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
    version: WireVersion,
) -> Sealed:
    if len(recipient_public) != 32 or len(eph_secret) != 32 or len(nonce) != 24:
        raise errors.CryptoError("wrong key, ephemeral secret or nonce length")
    eph_public: bytes = crypto_scalarmult_base(eph_secret)
    routing = {
        "v": version, "id": envelope_id, "from": spec.sender, "to": spec.recipient,
        "created_at": format_time(now), "expires_at": format_time(spec.expires_at),
        "sender_key": hashlib.sha256(bytes(signing_key.verify_key)).hexdigest(),
        "recipient_key": kid(recipient_public),
        "eph": b64url_encode(eph_public), "nonce": b64url_encode(nonce),
    }  # fmt: skip
    meta = _meta(spec)
    header = _validated(routing | meta, now, spec.expires_at)
    if version == 1:
        clear, sealed = routing | meta, payload
    else:  # rule 1: v2's cleartext is only the routing; the meta is sealed with the payload
        clear, sealed = routing, {"meta": meta, "payload": payload}
    header_bytes = canonical_json(clear)
    if len(header_bytes) > MAX_HEADER:
        raise errors.CryptoError("envelope header too large")
    key = _kdf(_shared(eph_secret, recipient_public), eph_public, recipient_public)
    ct: bytes = crypto_aead_xchacha20poly1305_ietf_encrypt(
        canonical_json(sealed), header_bytes, nonce, key
    )
    body = _MAGICS[version] + struct.pack(">I", len(header_bytes)) + header_bytes
    body += struct.pack(">I", len(ct)) + ct
    return Sealed(body + signing_key.sign(ENVELOPE_TAG + body).signature, header)


def _meta(spec: EnvelopeSpec) -> dict[str, Any]:
    return {
        "type": spec.type,
        "isa": spec.isa.model_dump(),
        "purpose": spec.purpose,
        "lawful_basis": spec.lawful_basis,
        "risk": spec.risk,
        "handling": list(spec.handling),
    }


def _validated(raw: dict[str, Any], now: datetime, expires_at: datetime) -> Header:
    """``raw`` (routing and meta) as a ``Header``; strict, so ``raw`` IS its JSON dump."""
    try:
        header = Header.model_validate(raw)
    except ValidationError as exc:
        raise errors.CryptoError(f"invalid envelope header ({exc.error_count()} fields)") from exc
    if expires_at <= now:
        raise errors.CryptoError("expires_at must be later than now")
    return header


@dataclass(frozen=True)
class Frame:
    """A frame that passed step 1 (structure), its parts not yet authenticated."""

    version: WireVersion
    routing: Routing  # a Header (routing and meta) for v1
    header_bytes: bytes
    ct: bytes
    signed: bytes
    sig: bytes
    eph: bytes
    nonce: bytes


def parse_frame(frame: bytes, max_ciphertext: int) -> Frame:
    """Step 1: the frame's structure, lengths, canonical header and header fields."""
    version = _VERSIONS.get(frame[:4]) if len(frame) >= 12 + SIG_LEN else None
    if version is None:
        raise errors.EnvelopeRejected("bad_frame")
    (hlen,) = struct.unpack(">I", frame[4:8])
    if hlen > MAX_HEADER or len(frame) < 12 + hlen + SIG_LEN:
        raise errors.EnvelopeRejected("bad_frame")
    (clen,) = struct.unpack(">I", frame[8 + hlen : 12 + hlen])
    if clen > max_ciphertext or clen < 16 or len(frame) != 12 + hlen + clen + SIG_LEN:
        raise errors.EnvelopeRejected("bad_frame")
    header_bytes = frame[8 : 8 + hlen]
    model = Header if version == 1 else Routing  # v2's cleartext holds no meta (rule 1)
    try:
        routing = model.model_validate(parse_canonical(header_bytes))
        created, expires = _t(routing.created_at), _t(routing.expires_at)
        eph, nonce = b64url_decode(routing.eph), b64url_decode(routing.nonce)
    except (ValueError, ValidationError) as exc:
        raise errors.EnvelopeRejected("bad_frame") from exc
    if routing.v != version or expires <= created or len(eph) != 32 or len(nonce) != 24:
        raise errors.EnvelopeRejected("bad_frame")
    end = 12 + hlen + clen
    return Frame(
        version, routing, header_bytes, frame[12 + hlen : end], frame[:end], frame[end:], eph,
        nonce,
    )  # fmt: skip


def peek_header(frame: bytes, *, max_ciphertext: int = MAX_CIPHERTEXT) -> Routing:
    """The routing fields of a well-formed frame, NOT authenticated: for routing and dedupe."""
    return parse_frame(frame, max_ciphertext).routing


def envelope_sha256(frame: bytes) -> str:
    """Hex SHA-256 of the whole frame (what receipts cite)."""
    return hashlib.sha256(frame).hexdigest()


def decrypt_frame(parts: Frame, keyring: Keyring, now: datetime) -> tuple[Header, dict[str, Any]]:
    """Step 7: our private key for ``recipient_key``, then X25519, KDF and AEAD, then the
    plaintext's form (v2: the sealed meta joined to the routing); ``EnvelopeRejected``."""
    key = keyring.for_decrypt(parts.routing.recipient_key, now)  # key_unknown / key_retired
    try:
        shared = _shared(key.secret_bytes(), parts.eph)
        sym = _kdf(shared, parts.eph, key.public)
        plaintext: bytes = crypto_aead_xchacha20poly1305_ietf_decrypt(
            parts.ct, parts.header_bytes, parts.nonce, sym
        )
    except (errors.CryptoError, CryptoError, ValueError) as exc:
        raise errors.EnvelopeRejected("decrypt_failed") from exc
    try:
        return _unseal(parts.routing, parse_canonical(plaintext))
    except (ValueError, ValidationError) as exc:
        raise errors.EnvelopeRejected("payload_invalid") from exc


def _unseal(routing: Routing, document: Any) -> tuple[Header, dict[str, Any]]:
    """The whole header and the payload from the plaintext: v1 seals the bare payload object;
    v2 exactly ``{"meta": Meta, "payload": object}``. ValueError when it is neither."""
    if isinstance(routing, Header):  # v1: the meta came in clear (and was signed)
        header, payload = routing, document
    elif not isinstance(document, dict) or document.keys() != {"meta", "payload"}:
        raise ValueError("a v2 plaintext is exactly {meta, payload}")
    else:
        meta, payload = Meta.model_validate(document["meta"]), document["payload"]
        header = Header.model_construct(**dict(routing), **dict(meta))  # both parts validated
    if not isinstance(payload, dict):
        raise ValueError("the payload is not a JSON object")
    return header, payload
