"""Encryption at rest of inbox payloads: one fresh data key per message, optionally wrapped.

Rules:

1. Every payload is sealed with its own random 32-byte key (XSalsa20-Poly1305, ``SecretBox``);
   deleting that key is crypto-shredding the payload.
2. With a key-encryption key (KEK, 32 bytes, kept outside the database: e.g. derived from the
   agency's key file), the stored data keys are themselves sealed under the KEK, so a copied
   database file alone reveals no payload. Without one, the data keys are stored as they are
   (shredding still works; a stolen disk is then the full-disk encryption's job).
3. A store remembers whether, and under which KEK, it was created (a sealed check value in
   ``meta``); opening it with another KEK, or without the one it needs, is refused up front.
4. No key material ever appears in an error message.
"""

from __future__ import annotations

import nacl.exceptions
import nacl.secret
import nacl.utils

from agent.errors import StoreUnavailable

__all__ = ["PayloadSealer"]

_CHECK = b"isa-relay store kek check v1"
_NO_KEK = b"no-kek"


class PayloadSealer:
    """Seals and opens inbox payloads; ``kek`` is optional (rule 2)."""

    def __init__(self, kek: bytes | None = None) -> None:
        if kek is not None and len(kek) != nacl.secret.SecretBox.KEY_SIZE:
            raise StoreUnavailable("the key-encryption key must be 32 bytes")
        self._kek = None if kek is None else nacl.secret.SecretBox(kek)

    def __repr__(self) -> str:
        return f"PayloadSealer(kek={'set' if self._kek else 'none'})"

    def seal(self, payload: bytes) -> tuple[bytes, bytes]:
        """(ciphertext, stored data key) for one new message."""
        key = nacl.utils.random(nacl.secret.SecretBox.KEY_SIZE)
        ciphertext = bytes(nacl.secret.SecretBox(key).encrypt(payload))
        stored = key if self._kek is None else bytes(self._kek.encrypt(key))
        return ciphertext, stored

    def open(self, ciphertext: bytes, stored_key: bytes, message_id: str) -> bytes:
        try:
            key = stored_key if self._kek is None else bytes(self._kek.decrypt(stored_key))
            return bytes(nacl.secret.SecretBox(key).decrypt(ciphertext))
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise StoreUnavailable(f"stored payload of {message_id!r} cannot be opened") from exc

    def check_value(self) -> bytes:
        """What a new store records in ``meta`` (rule 3)."""
        return _NO_KEK if self._kek is None else bytes(self._kek.encrypt(_CHECK))

    def verify(self, recorded: bytes) -> None:
        """Refuse a store created under another KEK, or with/without one when we differ."""
        if self._kek is None:
            if recorded != _NO_KEK:
                raise StoreUnavailable("this store needs its key-encryption key")
            return
        if recorded == _NO_KEK:
            raise StoreUnavailable(
                "this store was created without a key-encryption key, but one was given"
            )
        try:
            ok = self._kek.decrypt(recorded) == _CHECK
        except (nacl.exceptions.CryptoError, ValueError):
            ok = False
        if not ok:
            raise StoreUnavailable("the key-encryption key does not match this store")
