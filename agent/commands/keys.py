"""``isa-agent keys status|rotate --config FILE``: the agency's encryption keys.

Rules:
1. ``status`` shows every kid with its state (pending, current, grace, destroyed) and dates,
   whether a rotation is due, and which kid the federation manifest this agent holds publishes.
   It changes nothing. No private key material is ever printed: only kids.
2. ``rotate`` makes a new key now (``agent.keyrotation.KeyRotator.rotate``), records it in the
   audit log and prints where the signed announcement is. With ``[trust] manifest_url`` it
   posts the announcement to the manifest server at once (``agent.announcer``); if that fails,
   a running agent posts it at its next housekeeping tick, so no one has to hand it over. With
   a manifest file it prints the operator's step (``isa-broker agency announce``). A running
   agent picks the new keyring up at its next housekeeping tick.
3. The clock is read here, at the edge.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from agent.announcer import Announcer
from agent.audit import AuditLog, load_subject_secret, subject_key_path
from agent.config import Settings, load_settings
from agent.keyrotation import DEFAULT_LEAD, KeyRotator, describe, key_status
from agent.keystore import load_keyring, read_signing_key
from agent.manifest_server import server_url
from agent.trust import TrustHolder
from federation.keys import Keyring, RotationPolicy

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys status|rotate`` to the `isa-agent` parser."""
    parser = sub.add_parser("keys", help="show or rotate the agency's encryption keys")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="each key's state and whether rotation is due")
    status.add_argument("--config", type=Path, required=True, help="agent.toml")
    status.set_defaults(func=_status)
    rotate = actions.add_parser("rotate", help="make a new encryption key now and announce it")
    rotate.add_argument("--config", type=Path, required=True, help="agent.toml")
    rotate.set_defaults(func=_rotate)


def _policy(settings: Settings) -> RotationPolicy:
    keys = settings.keys
    return RotationPolicy(
        rotate_every=timedelta(days=keys.rotate_every_days), grace=timedelta(days=keys.grace_days)
    )


def _keyring(settings: Settings) -> Keyring:
    return load_keyring(settings.keys.encryption_dir, _policy(settings), settings.keys.passphrase)


def _published_kid(settings: Settings, now: datetime) -> str:
    trust = TrustHolder(settings.trust, settings.data_dir)
    trust.load_persisted()
    manifest = trust.manifest
    if manifest is None:
        return "no manifest held yet"
    note = manifest.current_encryption_key(settings.agency, now)
    return f"{note.kid} (serial {manifest.serial})" if note else f"none (serial {manifest.serial})"


def _status(args: argparse.Namespace) -> int:
    settings, now = load_settings(args.config, os.environ), args.clock()
    keyring = _keyring(settings)
    rows = key_status(keyring, settings.data_dir, now)
    print(f"encryption keys of {settings.agency} (rotate every {settings.keys.rotate_every_days}"
          f" days, grace {settings.keys.grace_days} days):")  # fmt: skip
    for row in rows:
        print(f"  {describe(row)}")
    current = keyring.current(now)
    print(f"current key: {current.kid if current else 'NONE'}")
    print(f"published in the federation manifest: {_published_kid(settings, now)}")
    live = [r for r in rows if r.state == "current"]
    due = not live or now >= max(r.retire_at for r in live) - DEFAULT_LEAD
    print("rotation: DUE (isa-agent keys rotate)" if due else "rotation: not due")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, os.environ)
    now = args.clock()
    signing_key = read_signing_key(settings.keys.signing_key, settings.keys.passphrase)
    keyring = _keyring(settings)
    secret = load_subject_secret(subject_key_path(settings.keys.encryption_dir))

    async def run() -> tuple[str, str | None]:
        audit = AuditLog(
            settings.data_dir, agency=settings.agency, signing_key=signing_key,
            subject_secret=secret, clock=args.clock,
        )  # fmt: skip  # signs a checkpoint on close: verify needs its key_rotation entry covered
        async with audit:
            rotator = KeyRotator(
                agency=settings.agency, encryption_dir=settings.keys.encryption_dir,
                data_dir=settings.data_dir, signing_key=signing_key, keyring=keyring,
                audit=audit, passphrase=settings.keys.passphrase,
            )  # fmt: skip
            note = await rotator.rotate(now, actor="isa-agent keys rotate")
            return note.kid, await _announce_now(settings, rotator, audit, args.clock)

    kid, announced = asyncio.run(run())
    path = settings.data_dir / "announcements" / f"{kid}.json"
    print(f"new encryption key {kid} is current; the previous key decrypts during its grace")
    print(f"signed announcement: {path}")
    if announced is not None:
        print(f"posted to the manifest server: {announced}")
    else:
        print(f"next (operator): isa-broker agency announce --federation DIR {path}")
    return 0


async def _announce_now(
    settings: Settings, rotator: KeyRotator, audit: AuditLog, clock: Callable[[], datetime]
) -> str | None:
    """Rule 2: post the new announcement now; what happened, or None with a manifest file."""
    url = server_url(settings.trust, f"/v1/announcements/{settings.agency}")
    if url is None:
        return None
    trust = TrustHolder(settings.trust, settings.data_dir)
    trust.load_persisted()
    async with aiohttp.ClientSession() as session:
        announcer = Announcer(
            agency=settings.agency, data_dir=settings.data_dir, keys=rotator.keys, trust=trust,
            url=url, session=session, audit=audit, clock=clock,
        )  # fmt: skip
        done = await announcer.announce_pending()
    if done:
        return "accepted; senders use the key from their next manifest poll"
    return "not accepted yet; the running agent posts it again at its next housekeeping tick"
