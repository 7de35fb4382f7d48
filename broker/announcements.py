"""The manifest server's announcement inbox: agents' posted key announcements, judged, stored
where ``broker.fedstate`` reads them and published in the next manifest serial.

Rules:
1. ``AnnouncementInbox.offer`` judges an announcement with ``federation.key_offer`` against the
   manifest being served and the announcements the federation directory holds for that agency
   (``DIR/announcements/<agency>/<kid>.json``, the same files ``isa-broker agency announce``
   writes), all under one lock.
2. A new announcement is written (temporary file, fsync, rename) and the next manifest is
   published with ``broker.fedstate.publish_manifest`` (which re-verifies it as an agent would);
   if publishing fails, the file is removed again, so an announcement is stored only when a
   manifest carries it, and the agent's retry can succeed later.
3. The same announcement again changes nothing and publishes nothing (``unchanged``).
4. Blocking: call ``offer`` from a thread in async code.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime

from broker.fedstate import FederationLayout, announcement_json, publish_manifest, write_durably
from federation.errors import AnnouncementRefused, ManifestRejected
from federation.key_offer import judge_announcement
from federation.keys import KeyAnnouncement, parse_announcement
from federation.manifest import Manifest
from federation.topology import is_agency_id

__all__ = ["AnnouncementInbox", "Offered"]


@dataclass(frozen=True)
class Offered:
    """What an offer did: ``accepted`` (published at ``serial``) or ``unchanged``."""

    status: str
    kid: str
    serial: int | None


class AnnouncementInbox:
    """Posted key announcements for one federation directory (rules 1-4)."""

    def __init__(self, layout: FederationLayout) -> None:
        self.layout = layout
        self._lock = threading.Lock()

    def held(self, agency: str) -> list[KeyAnnouncement]:
        """The announcements the directory holds for ``agency`` (unreadable ones skipped)."""
        if not is_agency_id(agency):  # the id becomes a directory name: only [a-z0-9-]
            raise AnnouncementRefused("malformed", "not an agency id")
        folder = self.layout.announcements(agency)
        found = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                found.append(parse_announcement(json.loads(path.read_bytes())))
            except (ValueError, ManifestRejected):
                continue  # publish_manifest reports a broken file; it cannot be "held"
        return found

    def offer(self, note: KeyAnnouncement, manifest: Manifest, now: datetime) -> Offered:
        """Judge, store and publish ``note`` (rules 1-3); AnnouncementRefused if refused."""
        with self._lock:
            if not judge_announcement(note, self.held(note.agency), manifest, now):
                return Offered("unchanged", note.kid, None)
            target = self.layout.announcements(note.agency) / f"{note.kid}.json"
            write_durably(target, announcement_json(note))
            try:
                serial, _ = publish_manifest(self.layout, now)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            return Offered("accepted", note.kid, serial)


