"""Key announcements reach the manifest with no hand-off: the agent posts them itself.

Rules:
1. After a rotation (``isa-agent keys rotate`` or the running agent's own), the signed
   announcement sits in ``<data_dir>/announcements/<kid>.json`` (``agent.keyrotation`` rule 1).
   The running agent posts every such announcement that its held manifest does not yet carry,
   and whose key it still holds, to ``POST /v1/announcements/{agency}`` on the manifest server
   (``agent.manifest_server``; docs/protocol.md section 3.1) every ``interval`` (the
   housekeeping interval), until the server accepts it. So a rotated key is posted within one
   housekeeping interval, and re-posted after any failure: the manifest server being down
   delays the new key, never loses it. ``isa-agent keys rotate`` posts once at once too.
2. ``accepted`` and ``unchanged`` both mean the server holds it: it is not posted again by this
   process. A refusal (4xx) is retried too (the server may be serving an older manifest), but
   written to the audit log only once per key and outcome.
3. Every acceptance and refusal is an audit entry (``key_rotation``, outcome ``announced`` or
   ``announcement_refused``), naming only the kid and the server's answer: never a key.
4. With a manifest FILE there is no server: nothing is posted, the operator hands the file over
   (``isa-broker agency announce``) as before.
5. aiohttp errors become :class:`agent.errors.AnnouncementNotAccepted` here; nothing escapes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import aiohttp

from agent.audit import AuditEvent, AuditSink
from agent.errors import AnnouncementNotAccepted, StoreUnavailable
from agent.keyrotation import KeyringHolder
from agent.trust import Trust
from federation.canonical import canonical_json
from federation.errors import ManifestRejected
from federation.keys import KeyAnnouncement, parse_announcement

__all__ = ["Announcer", "post_announcement"]

log = logging.getLogger(__name__)
_TIMEOUT = aiohttp.ClientTimeout(total=10)


async def post_announcement(session: aiohttp.ClientSession, url: str, note: KeyAnnouncement) -> str:
    """POST ``note``; the server's status (``accepted``/``unchanged``), else the error (rule 5)."""
    body = canonical_json(note.model_dump())
    try:
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}, timeout=_TIMEOUT
        ) as response:
            text = (await response.text())[:500]
            if response.status >= 300:
                raise AnnouncementNotAccepted(
                    f"the manifest server refused key {note.kid} ({response.status}): {text}",
                    status=response.status,
                )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise AnnouncementNotAccepted(
            f"cannot reach the manifest server at {url}: {exc!r}"
        ) from None
    try:
        answer = json.loads(text)
        return str(answer["status"]) + (
            f", serial {answer['serial']}" if answer.get("serial") else ""
        )
    except (ValueError, KeyError, TypeError):
        return "accepted"


def _read_announcements(folder: Path) -> list[KeyAnnouncement]:
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(parse_announcement(json.loads(path.read_bytes())))
        except (OSError, ValueError, ManifestRejected):
            log.error("%s is not a key announcement; it is not posted", path.name)
    return found


class Announcer:
    """Posts this agency's unpublished key announcements to the manifest server (rules 1-3)."""

    def __init__(
        self,
        *,
        agency: str,
        data_dir: Path,
        keys: KeyringHolder,
        trust: Trust,
        url: str,
        session: aiohttp.ClientSession,
        audit: AuditSink,
        clock: Callable[[], datetime],
    ) -> None:
        self._agency, self._folder, self._keys, self._trust = (
            agency,
            data_dir / "announcements",
            keys,
            trust,
        )
        self._url, self._session, self._audit, self._clock = url, session, audit, clock
        self._held: set[str] = set()  # kids the server holds (rule 2)
        self._audited: set[tuple[str, str]] = set()  # (kid, outcome) already in the audit log

    async def run(self, interval: float) -> None:
        while True:
            await self.announce_pending()
            await asyncio.sleep(interval)

    async def pending(self, now: datetime) -> list[KeyAnnouncement]:
        """Announcements of keys still held that neither the manifest nor the server holds."""
        notes = await asyncio.to_thread(_read_announcements, self._folder)
        manifest = self._trust.manifest
        entry = None if manifest is None else manifest.agency(self._agency)
        published = {a.kid for a in entry.announcements} if entry is not None else set()
        keyring = self._keys.current
        return [
            n for n in notes
            if n.agency == self._agency and n.kid not in published | self._held
            and keyring.state(n.kid, now) not in (None, "destroyed")
        ]  # fmt: skip

    async def announce_pending(self) -> list[str]:
        """Post each pending announcement once now; the kids the server now holds."""
        done = []
        for note in await self.pending(self._clock()):
            try:
                answer = await post_announcement(self._session, self._url, note)
            except AnnouncementNotAccepted as exc:
                log.warning("key %s not announced yet (retried): %s", note.kid, exc.message)
                if exc.status is not None and 400 <= exc.status < 500:
                    await self._record(note.kid, "announcement_refused", exc.message)
                continue
            log.info("key %s announced to the manifest server (%s)", note.kid, answer)
            if await self._record(note.kid, "announced", f"key {note.kid} announced: {answer}"):
                self._held.add(note.kid)  # else posted again (unchanged) and audited then
                done.append(note.kid)
        return done

    async def _record(self, kid: str, outcome: str, detail: str) -> bool:
        """Write the audit entry once per (kid, outcome); False if the log cannot take it."""
        if (kid, outcome) in self._audited:
            return True
        event = AuditEvent("key_rotation", "agent", outcome=outcome, detail=detail[:300])
        try:
            await self._audit.record(event, self._clock())
        except StoreUnavailable:
            log.error("cannot audit the announcement of %s; tried again next tick", kid)
            return False
        self._audited.add((kid, outcome))
        return True
