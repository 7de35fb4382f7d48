"""Encryption-key rotation: status, rotate now, rotate when due, destroy after grace.

Rules:
1. ``rotate`` generates a new X25519 key, writes its file (0600, never overwritten), adds it to
   the keyring (the previous key passes to grace: it still decrypts, for ``grace``) and saves
   the keyring, then writes the agency-signed announcement to
   ``<data_dir>/announcements/<kid>.json``, from where ``agent.announcer`` posts it to the
   manifest server (with a manifest file: the operator runs ``isa-broker agency announce``).
   Senders start using the new key once the next manifest carries the announcement
   (``Manifest.current_encryption_key``); until then they seal to the old key, which is in grace.
2. A key is due for rotation ``lead`` before its current period ends (so the new announcement
   is published before the old one lapses), or when no key is current at all. A key the
   federation manifest revokes (``isa-broker key revoke``, issue 15.4) does not count as
   current: the agent rotates away from it at its next tick, whatever the reason code.
3. ``destroy_expired`` drops private keys past their grace: their files are deleted and the kid
   stays in the keyring as destroyed, so late envelopes are refused with ``key_retired``.
4. Every rotation and destruction is an audit entry (``key_rotation``). Keys never appear in any
   message: only kids.
5. The keyring on disk is the truth shared by ``isa-agent keys rotate`` and a running agent:
   ``KeyRotator.sync`` re-reads it when the file changed, so a rotation done from the command line
   is used by the running agent's receiver at its next housekeeping tick.
6. A new key starts at a whole second (the announcement's resolution) strictly after the newest
   key in the keyring, so "newest" is never a tie (two rotations in one second, or a rotation in
   the second the previous key was made, still order).
7. The running agent's keyring lives in one :class:`KeyringHolder`, which the rotator owns
   (``KeyRotator.keys``): rotation replaces it there (``replace``), the receiver re-reads it
   there when an envelope names a kid it does not know (``reload``), everyone reads
   ``current``. No one assigns a keyring to a field of a shared object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.audit import AuditEvent, AuditSink
from agent.config import ROTATION_LEAD_DAYS
from agent.keystore import KEYRING_FILE, load_keyring, save_keyring, write_key_file
from agent.private_files import write_private_atomically
from federation.canonical import canonical_json, format_time
from federation.errors import KeyFileError
from federation.keys import EncryptionKey, KeyAnnouncement, Keyring, SigningKey, announce

__all__ = [
    "DEFAULT_LEAD",
    "KeyRotator",
    "KeyStatus",
    "KeyringHolder",
    "announcement_path",
    "describe",
    "key_status",
]

log = logging.getLogger(__name__)

DEFAULT_LEAD = timedelta(days=ROTATION_LEAD_DAYS)  # agent.config rule 6 checks it


class KeyringHolder:
    """The agency's current keyring (rule 7); ``load`` re-reads it from disk."""

    def __init__(self, keyring: Keyring, load: Callable[[], Keyring]) -> None:
        self._keyring = keyring
        self._load = load

    @property
    def current(self) -> Keyring:
        return self._keyring

    def replace(self, keyring: Keyring) -> None:
        """Key rotation's new keyring, in force for every reader from now on."""
        self._keyring = keyring

    async def reload(self) -> bool:
        """Re-read the keyring from disk (``isa-agent keys rotate`` may have added a key that
        the housekeeper has not picked up yet); True if it now holds more keys."""
        try:
            fresh = await asyncio.to_thread(self._load)
        except KeyFileError as exc:
            log.error("cannot re-read the keyring: %s", exc.message)
            return False
        if len(fresh.entries()) <= len(self._keyring.entries()):
            return False
        self._keyring = fresh
        return True


def announcement_path(data_dir: Path, kid: str) -> Path:
    return data_dir / "announcements" / f"{kid}.json"


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """One keyring entry as ``isa-agent keys status`` shows it (no secret); ``state`` is
    current, grace, destroyed, or pending (a new key whose start is still ahead)."""

    kid: str
    state: str
    not_before: datetime
    retire_at: datetime
    destroy_at: datetime
    announcement_file: bool


def key_status(keyring: Keyring, data_dir: Path, now: datetime) -> list[KeyStatus]:
    return [
        KeyStatus(
            e.kid,
            "pending" if now < e.not_before and e.state(now) != "destroyed" else e.state(now),
            e.not_before,
            e.retire_at,
            e.destroy_at,
            announcement_path(data_dir, e.kid).is_file(),
        )
        for e in keyring.entries()
    ]


class KeyRotator:
    """Rotation and destruction over one agency's keyring directory (rules 1-5)."""

    def __init__(
        self,
        *,
        agency: str,
        encryption_dir: Path,
        data_dir: Path,
        signing_key: SigningKey,
        keyring: Keyring,
        audit: AuditSink,
        passphrase: str | None = None,
        lead: timedelta = DEFAULT_LEAD,
        revoked: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.agency = agency
        self.encryption_dir = encryption_dir
        self.data_dir = data_dir
        self.keys = KeyringHolder(keyring, self._load)
        self.lead = lead
        self._revoked = revoked  # the kids of ours the held manifest revokes (rule 2)
        self._signing_key = signing_key
        self._audit = audit
        self._passphrase = passphrase
        self._mtime = self._keyring_mtime()

    @property
    def keyring(self) -> Keyring:
        """The keyring in force (``keys.current``)."""
        return self.keys.current

    def _load(self) -> Keyring:
        return load_keyring(self.encryption_dir, self.keyring.policy, self._passphrase)

    def _keyring_mtime(self) -> int:
        try:
            return (self.encryption_dir / KEYRING_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def sync(self) -> bool:
        """Re-read the keyring if another process changed it (rule 5); True if it did."""
        mtime = self._keyring_mtime()
        if mtime == self._mtime:
            return False
        self.keys.replace(self._load())
        self._mtime = mtime
        return True

    def due(self, now: datetime) -> bool:
        """Rule 2: no current unrevoked key, or the current one ends within ``lead``."""
        revoked = set(self._revoked())
        live = [
            e for e in self.keyring.entries() if e.state(now) == "current" and e.kid not in revoked
        ]
        if not live:
            return True
        return now >= max(e.retire_at for e in live) - self.lead

    async def rotate(self, now: datetime, *, actor: str = "agent") -> KeyAnnouncement:
        """Rule 1; returns the signed announcement (also written for the operator)."""
        previous = self.keyring.current(now)
        key = EncryptionKey.generate()
        write_key_file(self.encryption_dir / f"{key.kid}.key", key, self._passphrase)
        entry = self.keyring.add(key, self._start(now))
        self._save()
        not_before, not_after = self.keyring.policy.announcement_window(entry.not_before)
        note = announce(
            self._signing_key,
            agency=self.agency,
            public_key=key.public,
            not_before=not_before,
            not_after=not_after,
        )
        path = announcement_path(self.data_dir, note.kid)
        write_private_atomically(path, canonical_json(note.model_dump()) + b"\n")
        was = previous.kid if previous is not None else "none"
        detail = (
            f"new encryption key {note.kid} current from {note.not_before};"
            f" previous {was} in grace; announcement {path.name} to be published"
        )
        await self._audit.record(
            AuditEvent("key_rotation", actor, outcome="rotated", detail=detail), now
        )
        return note

    def _start(self, now: datetime) -> datetime:
        """Rule 6: whole seconds, strictly after every key already in the keyring."""
        start = now.replace(microsecond=0)
        latest = max((e.not_before for e in self.keyring.entries()), default=None)
        return latest + timedelta(seconds=1) if latest is not None and start <= latest else start

    async def destroy_expired(self, now: datetime, *, actor: str = "agent") -> list[str]:
        """Rule 3; returns the kids destroyed now."""
        gone = self.keyring.destroy_expired(now)
        if gone:
            self._save()
            for kid in gone:
                detail = f"encryption key {kid} destroyed after its grace period"
                event = AuditEvent("key_rotation", actor, outcome="destroyed", detail=detail)
                await self._audit.record(event, now)
        return gone

    async def tick(self, now: datetime) -> KeyAnnouncement | None:
        """What the housekeeper does each pass: sync, destroy expired, rotate if due."""
        self.sync()
        await self.destroy_expired(now)
        return await self.rotate(now) if self.due(now) else None

    def _save(self) -> None:
        save_keyring(self.encryption_dir, self.keyring)
        self._mtime = self._keyring_mtime()


def describe(status: KeyStatus) -> str:
    """One line of ``isa-agent keys status``."""
    file = "announcement written" if status.announcement_file else "no announcement file"
    return (
        f"{status.kid}  {status.state:<9}  from {format_time(status.not_before)}"
        f"  retire {format_time(status.retire_at)}  destroy {format_time(status.destroy_at)}"
        f"  ({file})"
    )
