"""Whether a sender can seal for a recipient now, judged from the manifest: a named cause or None.

This module performs no I/O and reads no clock: ``now`` is always an argument.

A referral the ISA permits can still not be delivered when the federation's trust says no. The
sender checks that BEFORE it accepts the referral (docs/protocol.md section 5, "Before
sealing"), so that it never answers 202 for an envelope the recipient is bound to reject, and
names the cause instead of calling it a policy denial.

Rules (the checks, in this order; the first failing one decides the cause):
1. ``sender_certificate_expired``: the sender's own signing key (the header's ``sender_key``) is
   certified in the manifest, not revoked, and its certificate is valid at ``now`` (the
   envelope's ``created_at``). This is the receiver's step 2 (``unknown_sender``,
   ``sender_revoked``, ``sender_key_expired``) seen from the sender. Validity is required at
   ``now`` only, not up to the message's ``expires_at``: the receiver judges the certificate at
   ``created_at``, so an envelope sealed under a valid certificate stays acceptable however late
   it is collected. Agency-wide: it stops every send.
2. ``recipient_key_unavailable``: the recipient is listed, not revoked, and has a current,
   non-revoked encryption key announcement at ``now`` (section 3), without which nothing can be
   sealed for it.
3. ``recipient_certificate_expired``: the recipient's certificate is valid at ``now``. Its key
   announcements are only as good as the certificate that signs them, and a recipient whose
   certificate has lapsed is no longer vouched for by the federation: fail closed rather than
   encrypt personal data to it.
4. Findings carry agency ids, kids and times only: no personal data, no key material.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from federation.canonical import format_time
from federation.keys import utc
from federation.manifest import Manifest

__all__ = ["SendBlock", "SendCause", "recipient_block", "send_block", "sender_block"]

SendCause = Literal[
    "sender_certificate_expired", "recipient_key_unavailable", "recipient_certificate_expired"
]


@dataclass(frozen=True, slots=True)
class SendBlock:
    """Why nothing can be sealed now: the cause (rules 1-3) and a plain-English detail."""

    cause: SendCause
    detail: str


def sender_block(manifest: Manifest, sender_key: str, now: datetime) -> SendBlock | None:
    """Rule 1 for the signing key whose hex SHA-256 is ``sender_key``; None when it may sign."""
    identity = manifest.signing_key_for(sender_key)

    def block(detail: str) -> SendBlock:
        return SendBlock("sender_certificate_expired", detail)

    if identity is None:
        return block("our signing key is not certified in the federation manifest")
    if identity.revoked:
        return block(f"our agency certificate ({identity.agency}) is revoked in the manifest")
    if now > identity.not_after:
        return block(f"our agency certificate expired at {format_time(identity.not_after)}")
    if now < identity.not_before:
        start = format_time(identity.not_before)
        return block(f"our agency certificate is not valid until {start}")
    return None


def recipient_block(manifest: Manifest, recipient: str, now: datetime) -> SendBlock | None:
    """Rules 2 and 3 for ``recipient``; None when a referral can be sealed for it now."""
    entry = manifest.agency(recipient)
    if entry is None:
        return SendBlock("recipient_key_unavailable", f"{recipient} is not in the manifest")
    if manifest.is_revoked(recipient):
        return SendBlock("recipient_key_unavailable", f"{recipient} is revoked in the manifest")
    if manifest.current_encryption_key(recipient, now) is None:
        lapsed = [utc(a.not_after) for a in entry.announcements if utc(a.not_after) <= now]
        since = f" (its last one lapsed at {format_time(max(lapsed))})" if lapsed else ""
        detail = f"{recipient} has no current encryption key announced in the manifest{since}"
        return SendBlock("recipient_key_unavailable", detail)
    identity = manifest.signing_key_of(recipient)
    if identity is None or not identity.valid_at(now):
        until = "" if identity is None else f" (valid until {format_time(identity.not_after)})"
        detail = f"the certificate of {recipient} is not valid now{until}"
        return SendBlock("recipient_certificate_expired", detail)
    return None


def send_block(
    manifest: Manifest, *, sender_key: str, recipient: str, now: datetime
) -> SendBlock | None:
    """Rules 1-3 in order: the first cause that stops sealing for ``recipient`` now, or None."""
    return sender_block(manifest, sender_key, now) or recipient_block(manifest, recipient, now)
