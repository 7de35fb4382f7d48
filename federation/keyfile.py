"""The on-disk format of an agent's private keys, optionally sealed with a passphrase.

This module performs no I/O: the caller reads and writes the file and passes ``os.stat().st_mode``.

Format (UTF-8 canonical JSON, one trailing LF)::

    {"format": "isa-relay-key/v1",
     "kind": "ed25519-signing" | "x25519-encryption",
     "public": b64url raw public key,
     "protection": "none" | "argon2id-secretbox",
     "kdf": null | {"salt": b64url 16 bytes, "opslimit": int, "memlimit": int},
     "secret": b64url raw 32-byte secret, or the SecretBox (nonce || ciphertext) of it}

Rules:
1. ``load_private_key`` refuses (``KeyFileError``) a file whose mode grants any access to group or
   other (``mode & 0o077``), before looking at its content.
2. With a passphrase the secret is sealed by ``nacl.secret.SecretBox`` under a key from
   ``nacl.pwhash.argon2id.kdf`` (salt, opslimit and memlimit stored in the file).
3. The public key is stored and checked against the secret on load (catches corruption or a
   mixed-up file). No error message ever contains key bytes or the passphrase.
4. ``signing_key_from_pem`` imports an unencrypted PKCS#8 Ed25519 private key (PEM or DER, e.g.
   from ``openssl genpkey -algorithm ed25519``), so it can be written in this format; any other
   key type, or an encrypted PEM, is a ``KeyFileError`` saying what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key
from nacl import pwhash
from nacl.exceptions import CryptoError as NaclCryptoError
from nacl.secret import SecretBox

from federation.canonical import b64url_decode, b64url_encode, canonical_json, parse_canonical
from federation.errors import KeyFileError
from federation.keys import EncryptionKey, SigningKey

__all__ = [
    "FORMAT",
    "INTERACTIVE",
    "MODERATE",
    "KdfLimits",
    "PrivateKey",
    "dump_private_key",
    "load_encryption_key",
    "load_private_key",
    "load_signing_key",
    "signing_key_from_pem",
]

FORMAT = "isa-relay-key/v1"
PrivateKey = SigningKey | EncryptionKey
Kind = Literal["ed25519-signing", "x25519-encryption"]
_FIELDS = {"format", "kind", "public", "protection", "kdf", "secret"}


@dataclass(frozen=True)
class KdfLimits:
    """argon2id cost parameters (libsodium opslimit / memlimit in bytes)."""

    opslimit: int
    memlimit: int


INTERACTIVE = KdfLimits(pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE)
MODERATE = KdfLimits(pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE)
_MIN = KdfLimits(pwhash.argon2id.OPSLIMIT_MIN, pwhash.argon2id.MEMLIMIT_MIN)
_MAX = KdfLimits(pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE)


def _parts(key: PrivateKey) -> tuple[Kind, bytes, bytes]:
    if isinstance(key, SigningKey):
        return "ed25519-signing", bytes(key.verify_key), bytes(key)
    if isinstance(key, EncryptionKey):
        return "x25519-encryption", key.public, key.secret_bytes()
    raise KeyFileError("unsupported key type")


def _box(passphrase: str | bytes, salt: bytes, limits: KdfLimits) -> SecretBox:
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not secret:
        raise KeyFileError("empty passphrase")
    key = pwhash.argon2id.kdf(
        SecretBox.KEY_SIZE, secret, salt, opslimit=limits.opslimit, memlimit=limits.memlimit
    )
    return SecretBox(key)


def dump_private_key(
    key: PrivateKey, passphrase: str | bytes | None = None, *, limits: KdfLimits = INTERACTIVE
) -> bytes:
    """The key file bytes for ``key``; sealed under ``passphrase`` when one is given.

    ``limits.memlimit`` must be a whole number of KiB (libsodium's unit).

    Write them with mode 0600 (``os.open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)``).
    """
    kind, public, secret = _parts(key)
    kdf: dict[str, Any] | None = None
    if passphrase is not None:
        _limits({"salt": "", "opslimit": limits.opslimit, "memlimit": limits.memlimit})
        salt = os.urandom(pwhash.argon2id.SALTBYTES)
        secret = bytes(_box(passphrase, salt, limits).encrypt(secret))
        kdf = {"salt": b64url_encode(salt), **vars(limits)}
    document = {
        "format": FORMAT,
        "kind": kind,
        "public": b64url_encode(public),
        "protection": "none" if kdf is None else "argon2id-secretbox",
        "kdf": kdf,
        "secret": b64url_encode(secret),
    }
    return canonical_json(document) + b"\n"


def _parse(data: bytes) -> dict[str, Any]:
    try:
        document = parse_canonical(data.removesuffix(b"\n"))
    except ValueError as exc:
        raise KeyFileError("key file is not a valid isa-relay key") from exc
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise KeyFileError("key file is not a valid isa-relay key")
    if document["format"] != FORMAT or document["kind"] not in (
        "ed25519-signing",
        "x25519-encryption",
    ):
        raise KeyFileError("unsupported key file format or kind")
    return document


def _limits(kdf: Any) -> tuple[bytes, KdfLimits]:
    """The stored KDF parameters, exactly as libsodium will use them (no silent rounding)."""
    if not isinstance(kdf, dict) or set(kdf) != {"salt", "opslimit", "memlimit"}:
        raise KeyFileError("key file has an invalid kdf section")
    ops, mem = kdf["opslimit"], kdf["memlimit"]
    if not (isinstance(ops, int) and isinstance(mem, int)) or not (
        _MIN.opslimit <= ops <= _MAX.opslimit
        and _MIN.memlimit <= mem <= _MAX.memlimit
        and mem % 1024 == 0  # libsodium uses whole KiB: any other value is an edited file
    ):
        raise KeyFileError("key file has an invalid kdf section")
    return b64url_decode(kdf["salt"]), KdfLimits(ops, mem)


def _secret(document: dict[str, Any], passphrase: str | bytes | None) -> bytes:
    raw = b64url_decode(document["secret"])
    if document["protection"] == "none":
        if document["kdf"] is not None:
            raise KeyFileError("key file has an invalid kdf section")
        return raw
    if document["protection"] != "argon2id-secretbox":
        raise KeyFileError("unsupported key protection")
    if passphrase is None:
        raise KeyFileError("key file is encrypted: a passphrase is needed")
    salt, limits = _limits(document["kdf"])
    try:
        return bytes(_box(passphrase, salt, limits).decrypt(raw))
    except (NaclCryptoError, ValueError, TypeError) as exc:
        raise KeyFileError("wrong passphrase or corrupted key file") from exc


def load_private_key(
    data: bytes, *, mode: int, passphrase: str | bytes | None = None
) -> PrivateKey:
    """Load a key file; refuses group/other access in ``mode`` (pass ``os.stat(path).st_mode``)."""
    if mode & 0o077:
        raise KeyFileError(
            f"key file permissions {mode & 0o777:o} allow group or other access; use chmod 600"
        )
    document = _parse(data)
    try:
        secret = _secret(document, passphrase)
        public = b64url_decode(document["public"])
        if len(secret) != 32:
            raise ValueError("wrong length")
        key: PrivateKey = (
            SigningKey(secret)
            if document["kind"] == "ed25519-signing"
            else EncryptionKey.from_secret(secret)
        )
    except (ValueError, TypeError) as exc:
        raise KeyFileError("key file is not a valid isa-relay key") from exc
    if _parts(key)[1] != public:
        raise KeyFileError("key file's public key does not match its secret")
    return key


def load_signing_key(
    data: bytes, *, mode: int, passphrase: str | bytes | None = None
) -> SigningKey:
    """Like ``load_private_key`` but requires an Ed25519 signing key."""
    key = load_private_key(data, mode=mode, passphrase=passphrase)
    if not isinstance(key, SigningKey):
        raise KeyFileError("expected an Ed25519 signing key file")
    return key


def load_encryption_key(
    data: bytes, *, mode: int, passphrase: str | bytes | None = None
) -> EncryptionKey:
    """Like ``load_private_key`` but requires an X25519 encryption key."""
    key = load_private_key(data, mode=mode, passphrase=passphrase)
    if not isinstance(key, EncryptionKey):
        raise KeyFileError("expected an X25519 encryption key file")
    return key


def signing_key_from_pem(data: bytes) -> SigningKey:
    """Rule 4: the Ed25519 signing key of an unencrypted PKCS#8 private key (PEM or DER)."""
    pem = data.lstrip().startswith(b"-----BEGIN")
    try:
        key = load_pem_private_key(data, None) if pem else load_der_private_key(data, None)
    except TypeError:
        raise KeyFileError(
            "the PEM key is encrypted: decrypt it first (openssl pkey -in KEY -out PLAIN), "
            "import PLAIN, then delete it"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError("not a PKCS#8 private key (PEM or DER)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError("the key must be Ed25519 (openssl genpkey -algorithm ed25519)")
    return SigningKey(key.private_bytes_raw())
