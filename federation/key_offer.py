"""Key announcements posted by agents to the manifest server, and the rules that server applies.

An agency's new X25519 key reaches the manifest with no hand-off: its agent posts the signed
announcement to ``POST /v1/announcements/{agency}`` on the manifest server (docs/protocol.md
section 3.1), which judges it here, stores it and publishes the next manifest serial.

This module performs no I/O and reads no clock (``now`` is always an argument).

Rules:
1. The body is one key announcement (docs/protocol.md section 3) as JSON, at most
   ``MAX_ANNOUNCEMENT_BYTES``; its ``agency`` must be the ``{agency}`` of the path.
2. The server accepts it only when, in this order: (1) the agency is in the manifest it serves
   (``unknown_agency``) and neither it nor its certificate is revoked (``revoked``); (2) the
   announcement verifies under the key of THAT agency's certificate, kid included
   (``bad_signature``): the operator, holding no agency key, still cannot inject a key; (3) its
   window is sane: ``not_after > now``, ``not_before <= now + MAX_AHEAD`` and at most
   ``MAX_LIFETIME`` long (``window``); (4) its kid is not revoked (``key_revoked``); (5) the
   exact announcement already held changes nothing (so a retry after a lost answer is safe),
   another body for a held kid is refused (``kid_conflict``); (6) it starts strictly after
   every announcement held for the agency (``stale``): a replayed older announcement cannot
   come back.
3. Refusals raise :class:`AnnouncementRefused` (a 4xx status each); nothing is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import ValidationError

from federation.errors import AnnouncementRefused, ManifestRejected
from federation.keys import KeyAnnouncement, utc, verify_announcement
from federation.manifest import Manifest

__all__ = [
    "MAX_AHEAD",
    "MAX_ANNOUNCEMENT_BYTES",
    "MAX_LIFETIME",
    "judge_announcement",
    "parse_offer",
]

MAX_ANNOUNCEMENT_BYTES = 4096
MAX_AHEAD = timedelta(days=1)  # a rotation starts its key now; a day covers any clock skew
MAX_LIFETIME = timedelta(days=366)  # the longest rotate_every_days an agent accepts


def parse_offer(body: bytes, agency: str) -> KeyAnnouncement:
    """Rule 1: the posted body as an announcement of ``agency`` (signature NOT yet checked)."""
    if len(body) > MAX_ANNOUNCEMENT_BYTES:
        raise AnnouncementRefused("malformed", f"more than {MAX_ANNOUNCEMENT_BYTES} bytes")
    try:
        note = KeyAnnouncement.model_validate_json(body)
    except (ValidationError, ValueError):
        raise AnnouncementRefused("malformed", "the body is not a key announcement") from None
    if note.agency != agency:
        raise AnnouncementRefused("agency_mismatch", f"{note.agency}'s key posted for {agency}")
    return note


def judge_announcement(
    offered: KeyAnnouncement, held: Sequence[KeyAnnouncement], manifest: Manifest, now: datetime
) -> bool:
    """Rule 2: True if ``offered`` is new and must be published, False if it is already held;
    raises :class:`AnnouncementRefused` otherwise. ``held``: the agency's stored announcements."""
    agency = offered.agency
    # 1. a current, unrevoked agency of the federation
    if manifest.agency(agency) is None:
        raise AnnouncementRefused("unknown_agency", f"{agency} is not in the manifest")
    identity = manifest.signing_key_of(agency)
    if identity is None or identity.revoked or manifest.is_revoked(agency):
        raise AnnouncementRefused("revoked", f"{agency} or its certificate is revoked")
    # 2. signed by that agency's certified key, the kid being that of the public key
    try:
        verify_announcement(offered, identity.verify_key)
    except ManifestRejected:
        raise AnnouncementRefused("bad_signature", f"not signed by {agency}'s key") from None
    _check_window(offered, now)  # 3
    # 4. never a revoked kid
    if manifest.revocation_of("key", offered.kid) is not None:
        raise AnnouncementRefused("key_revoked", f"key {offered.kid} is revoked")
    # 5. the same announcement again is a no-op; another body for a held kid is not
    same = next((h for h in held if h.kid == offered.kid), None)
    if same is not None:
        if same != offered:
            raise AnnouncementRefused("kid_conflict", f"key {offered.kid} is held otherwise")
        return False
    # 6. strictly newer than everything held: no replay of an older announcement
    newest = max((utc(h.not_before) for h in held), default=None)
    if newest is not None and utc(offered.not_before) <= newest:
        raise AnnouncementRefused(
            "stale", f"starts {offered.not_before}, not after the newest held key's start"
        )
    return True


def _check_window(offered: KeyAnnouncement, now: datetime) -> None:
    """Step 3: current or about to be, and no longer than an agent can rotate."""
    start, end = utc(offered.not_before), utc(offered.not_after)
    if end <= now:
        raise AnnouncementRefused("window", f"the key ended at {offered.not_after}")
    if start > now + MAX_AHEAD:
        raise AnnouncementRefused("window", f"the key starts too late ({offered.not_before})")
    if end - start > MAX_LIFETIME:
        raise AnnouncementRefused("window", "the key is announced for more than 366 days")
