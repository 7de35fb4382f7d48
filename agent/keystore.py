"""The agent's private keys on disk: the signing key and the X25519 keyring.

Rules:
1. Key files are read with their mode checked (``federation.keyfile`` refuses group/other
   access); new key files are created 0600 and never overwritten.
2. ``<encryption_dir>/keyring.json`` records each kid's lifecycle (no secrets);
   ``<encryption_dir>/<kid>.key`` holds the private key until it is destroyed.
3. Destroying a key deletes its file (bounded forward secrecy for stored traffic) and marks the
   kid destroyed, so later envelopes for it are rejected with ``key_retired``.
4. ``<keys dir>/store.key`` (beside ``subject.key``, outside ``data_dir``) is the store's
   key-encryption key: 32 random bytes, mode 0600, made when the agent first creates its store.
   It wraps every inbox payload's data key (``agent/store/crypto.py``), so a copy of
   ``data_dir`` alone (a backup, a lost disk) opens nothing. A store created before this key
   existed keeps working without it (its data keys are not wrapped; the agent says so).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from agent.private_files import private_dir, write_private_atomically
from federation.canonical import canonical_json
from federation.errors import KeyFileError
from federation.keyfile import dump_private_key, load_encryption_key, load_signing_key
from federation.keys import EncryptionKey, Keyring, KeyringEntry, RotationPolicy, SigningKey

__all__ = [
    "KEYRING_FILE",
    "STORE_KEY_FILE",
    "load_keyring",
    "load_store_key",
    "read_secret_file",
    "read_signing_key",
    "save_keyring",
    "store_key_path",
    "write_key_file",
]

KEYRING_FILE = "keyring.json"
STORE_KEY_FILE = "store.key"
_SECRET_BYTES = 32
_ENTRIES = TypeAdapter(list[KeyringEntry])


def _read(path: Path) -> tuple[bytes, int]:
    try:
        return path.read_bytes(), path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read ({exc.strerror})") from None


def read_signing_key(path: Path, passphrase: str | None = None) -> SigningKey:
    data, mode = _read(path)
    try:
        return load_signing_key(data, mode=mode, passphrase=passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc.message}") from None


def write_key_file(path: Path, key: SigningKey | EncryptionKey, passphrase: str | None) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(dump_private_key(key, passphrase))
        handle.flush()
        os.fsync(handle.fileno())


def load_keyring(directory: Path, policy: RotationPolicy, passphrase: str | None) -> Keyring:
    """The keyring recorded in ``directory`` with the private keys that still exist."""
    data, _ = _read(directory / KEYRING_FILE)
    try:
        entries = _ENTRIES.validate_json(data)
    except ValidationError:
        raise KeyFileError(f"{directory / KEYRING_FILE}: not a valid keyring") from None
    keyring = Keyring(policy)
    for entry in entries:
        key = None
        if not entry.destroyed:
            raw, mode = _read(directory / f"{entry.kid}.key")
            try:
                key = load_encryption_key(raw, mode=mode, passphrase=passphrase)
            except KeyFileError as exc:
                raise KeyFileError(f"{directory / entry.kid}.key: {exc.message}") from None
        keyring.restore(entry, key)
    return keyring


def save_keyring(directory: Path, keyring: Keyring) -> None:
    """Persist the lifecycle atomically, then delete the files of destroyed keys."""
    entries = keyring.entries()
    data = canonical_json([e.model_dump(mode="json") for e in entries])
    write_private_atomically(directory / KEYRING_FILE, data)
    for entry in entries:
        if entry.destroyed:
            (directory / f"{entry.kid}.key").unlink(missing_ok=True)


def store_key_path(encryption_dir: Path) -> Path:
    """Where the store's key-encryption key lives: the agent's key directory (rule 4)."""
    return encryption_dir.parent / STORE_KEY_FILE


def load_store_key(path: Path, *, store_exists: bool) -> bytes | None:
    """The store's key-encryption key (rule 4): read it; make it (0600) when the store is new;
    None for an existing store made without one, which still opens as it was made."""
    return read_secret_file(path, "store key", create=not store_exists)


def read_secret_file(path: Path, what: str, *, create: bool) -> bytes | None:
    """A 32-byte secret file (mode 0600; group or other access is refused). When it is missing:
    made with fresh random bytes if ``create``, else None."""
    if create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made earlier (or meanwhile): read that one
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create the {what} ({exc.strerror})") from None
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(os.urandom(_SECRET_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
    try:
        mode, data = path.stat().st_mode, path.read_bytes()
    except FileNotFoundError:
        if create:
            raise KeyFileError(f"{path}: cannot read the {what} (it vanished)") from None
        return None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if mode & 0o077:
        raise KeyFileError(f"{path}: the {what} must not be readable by group or others")
    if len(data) != _SECRET_BYTES:
        raise KeyFileError(f"{path}: the {what} must be exactly {_SECRET_BYTES} bytes")
    return data
