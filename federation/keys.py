"""X25519 encryption keys: kid, signed key announcements, rotation lifecycle, the receiver keyring.

This module performs no I/O and reads no clock: ``now`` is always an argument.

Rules:
1. The kid of an X25519 public key is the first 32 hex characters of SHA-256 of its raw 32 bytes.
2. An encryption key belongs to its agency, not to the CA: the agency announces it as
   ``{agency, kid, public_key, not_before, not_after, sig}`` where ``sig`` (base64url) is the
   agency's Ed25519 signature over ``b"isa-relay/v1 key-announcement\\x00"`` followed by the
   canonical JSON of the object without ``sig``. Senders encrypt only to a key whose
   announcement is valid at the moment of sealing (``not_before <= now < not_after``).
3. Lifecycle of a private key: **current** (encrypt to it, decrypt with it) from ``not_before``
   until it is superseded by a newer key or ``rotate_every`` has passed; then **grace** (decrypt
   only) for ``grace``; then **destroyed** (private bytes dropped, the kid remembered so that a
   late message is refused as ``key_retired`` rather than ``key_unknown``).
4. No repr, str or error in this module ever shows private key bytes: use this module's
   ``SigningKey`` (PyNaCl's prints its seed from ``str()``) and ``EncryptionKey``.
5. ``UtcTime`` is the one validated time type of the wire models (ASCII digits, a real date).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey
from nacl.signing import SigningKey as _NaclSigningKey
from nacl.signing import VerifyKey
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from federation.canonical import b64url_decode, b64url_encode, canonical_json, format_time
from federation.errors import EnvelopeRejected, ManifestRejected

__all__ = [
    "ANNOUNCEMENT_TAG",
    "EncryptionKey",
    "KeyAnnouncement",
    "KeyState",
    "Keyring",
    "KeyringEntry",
    "RotationPolicy",
    "SigningKey",
    "UtcTime",
    "announce",
    "kid",
    "parse_announcement",
    "utc",
    "verify_announcement",
]

ANNOUNCEMENT_TAG = b"isa-relay/v1 key-announcement\x00"
KeyState = Literal["current", "grace", "destroyed"]
_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)
Kid = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def utc(text: str) -> datetime:
    """Parse a ``UtcTime`` string that has already been validated (fast path, no strptime)."""
    return datetime.fromisoformat(text)


def _valid_time(text: str) -> str:
    utc(text)  # the pattern fixes the shape; this rejects impossible dates (month 13, Feb 30)
    return text


UtcTime = Annotated[
    str,
    Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"),
    AfterValidator(_valid_time),
]
"""The canonical UTC time ``YYYY-MM-DDTHH:MM:SSZ``, validated as a real date and time."""


def kid(x25519_public: bytes) -> str:
    """The key id: first 32 hex characters of SHA-256 of the raw 32-byte public key."""
    if len(x25519_public) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    return hashlib.sha256(x25519_public).hexdigest()[:32]


class SigningKey(_NaclSigningKey):
    """An agency's Ed25519 signing key (PyNaCl), whose repr and str never show the seed.

    PyNaCl's own ``SigningKey.__str__`` prints the seed; use this class everywhere instead.
    """

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    @property
    def key_id(self) -> str:
        """Hex SHA-256 of the raw public key (the envelope header's ``sender_key``)."""
        return hashlib.sha256(bytes(self.verify_key)).hexdigest()

    def __repr__(self) -> str:
        return f"SigningKey(sender_key={self.key_id!r})"

    __str__ = __repr__


class EncryptionKey:
    """An X25519 private key. Its repr names the kid only."""

    __slots__ = ("_key",)

    def __init__(self, key: PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(PrivateKey.generate())

    @classmethod
    def from_secret(cls, secret: bytes) -> EncryptionKey:
        if len(secret) != 32:
            raise ValueError("an X25519 private key is 32 bytes")
        return cls(PrivateKey(secret))

    @property
    def public(self) -> bytes:
        return bytes(self._key.public_key)

    @property
    def kid(self) -> str:
        return kid(self.public)

    def secret_bytes(self) -> bytes:
        """The raw private scalar, for the key file and the KDF only. Handle with care."""
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"EncryptionKey(kid={self.kid!r})"

    __str__ = __repr__


class KeyAnnouncement(BaseModel):
    """A signed announcement of an agency's X25519 encryption key (see rule 2)."""

    model_config = _STRICT

    agency: str = Field(min_length=1, max_length=64)
    kid: Kid
    public_key: str
    not_before: UtcTime
    not_after: UtcTime
    sig: str

    def body(self) -> dict[str, str]:
        """The signed object: everything but ``sig``."""
        return self.model_dump(exclude={"sig"})

    def public_bytes(self) -> bytes:
        return b64url_decode(self.public_key)

    def valid_at(self, moment: datetime) -> bool:
        return utc(self.not_before) <= moment < utc(self.not_after)


def announce(
    signing_key: SigningKey,
    *,
    agency: str,
    public_key: bytes,
    not_before: datetime,
    not_after: datetime,
) -> KeyAnnouncement:
    """Sign an announcement of ``public_key`` with the agency's own signing key."""
    if not_after <= not_before:
        raise ValueError("not_after must be later than not_before")
    body = {
        "agency": agency,
        "kid": kid(public_key),
        "public_key": b64url_encode(public_key),
        "not_before": format_time(not_before),
        "not_after": format_time(not_after),
    }
    signature = signing_key.sign(ANNOUNCEMENT_TAG + canonical_json(body)).signature
    return KeyAnnouncement(**body, sig=b64url_encode(signature))


def verify_announcement(announcement: KeyAnnouncement, verify_key: VerifyKey) -> KeyAnnouncement:
    """Check the agency's signature, kid and window; ``ManifestRejected`` if any is wrong."""
    try:
        public = announcement.public_bytes()
        signature = b64url_decode(announcement.sig)
        verify_key.verify(ANNOUNCEMENT_TAG + canonical_json(announcement.body()), signature)
    except (ValueError, BadSignatureError) as exc:
        raise ManifestRejected("announcement_invalid", announcement.agency) from exc
    if len(public) != 32 or kid(public) != announcement.kid:
        raise ManifestRejected("announcement_invalid", announcement.agency)
    if utc(announcement.not_after) <= utc(announcement.not_before):
        raise ManifestRejected("announcement_invalid", announcement.agency)
    return announcement


def parse_announcement(obj: object) -> KeyAnnouncement:
    """Validate a parsed JSON object as an announcement (signature NOT checked)."""
    try:
        return KeyAnnouncement.model_validate(obj)
    except ValidationError as exc:
        raise ManifestRejected("announcement_malformed") from exc


@dataclass(frozen=True)
class RotationPolicy:
    """How long a key is current and how long it keeps decrypting afterwards."""

    rotate_every: timedelta = timedelta(days=30)
    grace: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if self.rotate_every <= timedelta(0) or self.grace < timedelta(0):
            raise ValueError("rotate_every must be positive and grace not negative")

    def announcement_window(self, not_before: datetime) -> tuple[datetime, datetime]:
        """The (not_before, not_after) a new key is announced with: current for rotate_every."""
        return not_before, not_before + self.rotate_every

    def rotation_due(self, current_not_before: datetime, now: datetime) -> bool:
        return now >= current_not_before + self.rotate_every


class KeyringEntry(BaseModel):
    """What the keyring knows about one kid (no secret); the agent persists it beside the keys."""

    model_config = _STRICT

    kid: Kid
    not_before: AwareDatetime
    retire_at: AwareDatetime
    destroy_at: AwareDatetime
    destroyed: bool = False

    def state(self, now: datetime) -> KeyState:
        if self.destroyed or now >= self.destroy_at:
            return "destroyed"
        return "current" if now < self.retire_at else "grace"


class Keyring:
    """A receiver's X25519 private keys by kid, with their lifecycle state at ``now``."""

    def __init__(self, policy: RotationPolicy | None = None) -> None:
        self.policy = policy or RotationPolicy()
        self._entries: dict[str, KeyringEntry] = {}
        self._keys: dict[str, EncryptionKey] = {}

    def add(self, key: EncryptionKey, not_before: datetime) -> KeyringEntry:
        """Add a key current from ``not_before``; a key superseded by a newer one enters grace."""
        if key.kid in self._entries:
            raise ValueError("this key is already in the keyring")
        for old in list(self._entries.values()):
            if old.not_before < not_before < old.retire_at:
                self._entries[old.kid] = self._retired(old, not_before)
        retire = not_before + self.policy.rotate_every
        later = [e.not_before for e in self._entries.values() if e.not_before > not_before]
        entry = self._retired(
            KeyringEntry(kid=key.kid, not_before=not_before, retire_at=retire, destroy_at=retire),
            min([retire, *later]),
        )
        return self.restore(entry, key)

    def _retired(self, entry: KeyringEntry, at: datetime) -> KeyringEntry:
        return entry.model_copy(update={"retire_at": at, "destroy_at": at + self.policy.grace})

    def restore(self, entry: KeyringEntry, key: EncryptionKey | None) -> KeyringEntry:
        """Put back a persisted entry (``key=None`` for a destroyed one)."""
        if key is not None and key.kid != entry.kid:
            raise ValueError("key does not match the entry's kid")
        self._entries[entry.kid] = entry
        if key is not None and not entry.destroyed:
            self._keys[entry.kid] = key
        return entry

    def entries(self) -> list[KeyringEntry]:
        return sorted(self._entries.values(), key=lambda e: e.not_before)

    def state(self, key_id: str, now: datetime) -> KeyState | None:
        entry = self._entries.get(key_id)
        return None if entry is None else entry.state(now)

    def current(self, now: datetime) -> EncryptionKey | None:
        """The newest current key at ``now`` (the one to announce), if any."""
        live = [e for e in self.entries() if e.state(now) == "current" and e.not_before <= now]
        return self._keys.get(live[-1].kid) if live else None

    def for_decrypt(self, key_id: str, now: datetime) -> EncryptionKey:
        """The private key for ``key_id`` if current or in grace, else ``EnvelopeRejected``."""
        entry = self._entries.get(key_id)
        if entry is None:
            raise EnvelopeRejected("key_unknown")
        key = self._keys.get(key_id)
        if entry.state(now) == "destroyed" or key is None:
            raise EnvelopeRejected("key_retired")
        return key

    def destroy_expired(self, now: datetime) -> list[str]:
        """Drop the private bytes of keys past their grace; return their kids (to delete files)."""
        gone = [
            e.kid for e in self._entries.values() if not e.destroyed and e.state(now) == "destroyed"
        ]
        for key_id in gone:
            self._entries[key_id] = self._entries[key_id].model_copy(update={"destroyed": True})
            self._keys.pop(key_id, None)
        return gone

    def __repr__(self) -> str:
        kids = ", ".join(e.kid for e in self.entries())
        return f"Keyring([{kids}])"

    __str__ = __repr__
