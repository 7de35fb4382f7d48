"""Revoking ONE encryption key or ONE agency certificate, with an RFC 5280 reason code.

Rules:
1. ``revoke_key`` revokes a kid the agency has announced (``DIR/announcements/<agency>/``);
   ``revoke_certificate`` the agency's certificate, named by its fingerprint (hex SHA-256 of the
   DER) or its serial number (decimal or 0x-hex). Anything else, an unknown agency, or a kid or
   certificate already revoked is a ConfigError naming what was asked: nothing is written.
2. ``reason`` is one of ``federation.manifest.REVOCATION_REASONS``; a note may follow in the
   manifest's ``reason`` as ``"<code>: <note>"`` (manifest rule 6: older agents read it as text).
3. The revocation is recorded in ``federation.toml`` (``[[revocations]]``) and the next manifest
   serial is published; if publishing fails, ``federation.toml`` is put back as it was.
4. Effects, within one manifest poll: senders never seal to a revoked kid (they take the
   agency's next valid key, or refuse with "no current encryption key"); the agency's own agent
   refuses envelopes already sealed to it unless the code says the key was retired rather than
   exposed (``superseded``, ``cessationOfOperation``, ``affiliationChanged``: still decrypted
   within its grace); every receiver refuses envelopes signed under a revoked certificate
   (``sender_certificate_revoked``, the code in its audit log), whatever their ``created_at``.
"""

from __future__ import annotations

import re
from datetime import datetime

from broker.fedstate import (
    FederationLayout,
    FederationState,
    RevocationState,
    load_state,
    publish_manifest,
    save_state,
)
from federation import pki
from federation.canonical import format_time
from federation.errors import ConfigError, ManifestRejected
from federation.manifest import REVOCATION_REASONS

__all__ = ["revoke_certificate", "revoke_key"]

_NOTE_MAX = 150


def _reason(code: str, note: str) -> str:
    """Rule 2: the manifest's reason text for ``code`` and an optional note."""
    if code not in REVOCATION_REASONS:
        raise ConfigError(f"--reason {code!r}: one of {', '.join(REVOCATION_REASONS)}")
    note = note.strip()
    if len(note) > _NOTE_MAX or any(ord(c) < 0x20 for c in note):
        raise ConfigError(f"--note: at most {_NOTE_MAX} printable characters")
    return f"{code}: {note}" if note else code


def _known_agency(state: FederationState, agency_id: str) -> None:
    agency = state.agency(agency_id)
    if agency is None:
        raise ConfigError(f"no agency {agency_id!r} in this federation")
    if agency.revoked_at is not None:
        raise ConfigError(f"agency {agency_id!r} is already revoked as a whole")


def _record(
    layout: FederationLayout, state: FederationState, new: RevocationState, now: datetime
) -> int:
    """Rule 3: save the revocation and publish; federation.toml is restored on failure."""
    if any((r.kind, r.ref) == (new.kind, new.ref) for r in state.revocations):
        raise ConfigError(f"{new.kind} {new.ref} of {new.agency!r} is already revoked")
    before = layout.state_file.read_bytes()
    save_state(layout, state.model_copy(update={"revocations": (*state.revocations, new)}))
    try:
        serial, _ = publish_manifest(layout, now)
    except BaseException:
        layout.state_file.write_bytes(before)
        raise
    return serial


def revoke_key(
    layout: FederationLayout,
    *,
    agency_id: str,
    kid: str,
    reason: str,
    now: datetime,
    note: str = "",
) -> int:
    """Revoke the announced encryption key ``kid`` of ``agency_id``; the new manifest serial."""
    text = _reason(reason, note)
    state = load_state(layout)
    _known_agency(state, agency_id)
    if not re.fullmatch(r"[0-9a-f]{32}", kid):
        raise ConfigError(f"--kid {kid!r}: a kid is 32 lowercase hex characters")
    if not (layout.announcements(agency_id) / f"{kid}.json").is_file():
        raise ConfigError(f"agency {agency_id!r} has announced no key {kid}")
    revocation = RevocationState(
        kind="key", agency=agency_id, ref=kid, revoked_at=format_time(now), reason=text
    )
    return _record(layout, state, revocation, now)


def revoke_certificate(
    layout: FederationLayout,
    *,
    agency_id: str,
    certificate: str,
    reason: str,
    now: datetime,
    note: str = "",
) -> int:
    """Revoke ``agency_id``'s certificate named by fingerprint or serial; the new serial."""
    text = _reason(reason, note)
    state = load_state(layout)
    _known_agency(state, agency_id)
    try:
        cert = pki.certificate_from_bytes(layout.agency_cert(agency_id).read_bytes())
    except (OSError, ManifestRejected):
        raise ConfigError(f"{layout.agency_cert(agency_id)}: no certificate to revoke") from None
    fingerprint = pki.fingerprint(cert)
    if certificate.lower() not in (fingerprint, str(cert.serial_number), hex(cert.serial_number)):
        raise ConfigError(
            f"agency {agency_id!r} holds no certificate {certificate!r} (its certificate is "
            f"serial {cert.serial_number}, fingerprint {fingerprint})"
        )
    revocation = RevocationState(
        kind="certificate", agency=agency_id, ref=fingerprint, revoked_at=format_time(now),
        reason=text,
    )  # fmt: skip
    return _record(layout, state, revocation, now)
