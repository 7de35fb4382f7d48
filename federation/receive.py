"""Receiving an envelope: every check of docs/protocol.md section 6, in one numbered order.

This module performs no I/O, reads no clock and runs no event loop: it takes the frame bytes,
the AMQP ``user_id`` it came with, the receiver's facts (its agency id, manifest, ISA registry,
keyring, limits), ``now`` and a ``seen`` answer, and returns :class:`Accepted` or
:class:`Refused` with ONE reason code. The step numbers are the protocol's, used once here, in
docs/protocol.md section 6 and in the tests:

1.  frame: magic, lengths, canonical header with exactly its version's fields (``bad_frame``);
2.  signature by the key the manifest certifies for ``from``, not revoked (the agency:
    ``sender_revoked``; only its certificate: ``sender_certificate_revoked``), valid at
    ``created_at`` (``unknown_sender``, ``bad_signature``, ``sender_mismatch``,
    ``sender_revoked``, ``sender_key_expired``);
3.  ``to`` is us (``wrong_recipient``);
4.  not expired (``expired``);
5.  ``created_at`` not beyond ``now`` plus the allowed skew (``clock_skew``);
6.  the id not accepted before (``replay``), see rule 2;
7.  decrypt with a key we hold, current or in grace and not revoked as exposed, and the
    plaintext's form (``key_revoked``, ``key_unknown``, ``key_retired``, ``decrypt_failed``,
    ``payload_invalid``);
8.  the manifest lists the cited ISA (``isa_unknown``) in the cited version with the cited
    sha256 (``isa_mismatch``; a version it does not list: ``isa_superseded`` if older than its
    current one, else ``isa_version_unknown``); a superseded version only for a message sealed
    before ``superseded_at`` and arriving before ``accept_until`` (``isa_superseded``); both
    parties (``isa_parties``); active (``isa_inactive``);
9.  our own copy of the cited version is held (``isa_mismatch``);
10. the payload matches its message type, minimised (``payload_invalid``);
11. the signed lawful-basis tags are the ones our ISA states (``lawful_basis_mismatch``);
12. every field is one the ISA allows at the stated risk level, in its form (``isa_violation``);
13. the AMQP ``user_id`` is the broker user the manifest lists for ``from``
    (``transport_identity``).

Rules:
1. The first failing step decides the reason; nothing after it runs. :func:`open_envelope` is
   steps 1-8 (the envelope alone, for callers without an ISA registry or a transport) and
   :func:`receive` is all of them: the one call a receiving agent makes.
2. Step 6 asks ``seen(id)``, a pure answer. It cannot be the source of truth for a receiver that
   stores concurrently (two copies in flight both pass a pre-check): such a receiver records the
   id atomically with storing the delivery and treats a failed insert as the replay. It passes
   :func:`deduplicated_when_stored`, which says that in its name.
3. A refusal names the envelope's routing (whom to send the signed ``rejected`` receipt) only
   when the sender is authenticated and the copy is not a replay; otherwise nobody is answered.
4. Steps 8, 9 and 12 judge a message by the ISA version it cites (``federation.isa_entries``
   rule 4), not by the one in force now. ``isa_version_unknown`` is the one refusal a receiver
   may cure itself: its manifest can be older than the sender's, so the agent fetches the
   manifest once and calls :func:`receive` again before refusing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nacl.exceptions import BadSignatureError

from federation.envelope import (
    ENVELOPE_TAG,
    MAX_CIPHERTEXT,
    Frame,
    Header,
    Opened,
    Routing,
    decrypt_frame,
    envelope_sha256,
    parse_frame,
    peek_header,
)
from federation.errors import EnvelopeRejected, PayloadInvalid
from federation.isa import Isa, IsaRegistry, check_received
from federation.isa_entries import cited_entry
from federation.keys import Keyring
from federation.keys import utc as _t
from federation.manifest import KEY_REVOCATIONS_KEEPING_GRACE, Manifest, SigningIdentity
from federation.pipeline import expected_lawful_basis
from federation.referrals import parse_payload

__all__ = [
    "Accepted",
    "ReceiverFacts",
    "Refused",
    "deduplicated_when_stored",
    "open_envelope",
    "receive",
]

#: Refusals no receipt answers (rule 3): the sender is not authenticated (anyone can send these),
#: or the copy is a replay (the first copy was answered).
_UNANSWERED = frozenset(
    {"bad_frame", "bad_signature", "unknown_sender", "sender_mismatch", "replay"}
)


@dataclass(frozen=True)
class ReceiverFacts:
    """What the receiver knows when a frame arrives: who it is, whom it trusts, its keys."""

    recipient: str
    manifest: Manifest
    registry: IsaRegistry
    keyring: Keyring
    max_skew: timedelta = timedelta(minutes=5)
    max_ciphertext: int = MAX_CIPHERTEXT


@dataclass(frozen=True)
class Accepted:
    """An envelope that passed every check: its header and the (minimised) payload."""

    header: Header
    payload: dict[str, Any]
    envelope_sha256: str


@dataclass(frozen=True)
class Refused:
    """The first check an envelope failed: its reason code, a detail for OUR audit log only,
    the routing to answer with a signed ``rejected`` receipt (None: answer nobody, rule 3) and
    the hash of the frame that receipt cites."""

    reason: str
    detail: str
    reply_to: Routing | None
    envelope_sha256: str


def deduplicated_when_stored(envelope_id: str) -> bool:
    """A ``seen`` answer for a receiver that records the id atomically with storing the
    delivery (rule 2): step 6 refuses nothing here; the store's insert does."""
    return False


def receive(
    frame: bytes,
    *,
    user_id: str | None,
    facts: ReceiverFacts,
    now: datetime,
    seen: Callable[[str], bool],
) -> Accepted | Refused:
    """Run steps 1-13 on ``frame`` as delivered with AMQP ``user_id``: accepted or one reason."""
    try:
        opened = open_envelope(  # 1-8.
            frame, recipient=facts.recipient, keyring=facts.keyring, manifest=facts.manifest,
            now=now, seen=seen, max_skew=facts.max_skew, max_ciphertext=facts.max_ciphertext,
        )  # fmt: skip
        return _accept(opened, user_id, facts)  # 9-13.
    except EnvelopeRejected as exc:
        return _refused(frame, exc, facts.max_ciphertext)


def open_envelope(
    frame: bytes,
    *,
    recipient: str,
    keyring: Keyring,
    manifest: Manifest,
    now: datetime,
    seen: Callable[[str], bool],
    max_skew: timedelta = timedelta(minutes=5),
    max_ciphertext: int = MAX_CIPHERTEXT,
) -> Opened:
    """Verify and decrypt a v1 or v2 ``frame`` for ``recipient`` (steps 1-8) or raise
    ``EnvelopeRejected(reason)``."""
    parts = parse_frame(frame, max_ciphertext)  # 1. frame
    routing = parts.routing
    _check_sender(parts, manifest)  # 2. signature by a non-revoked key valid at created_at
    if routing.to != recipient:  # 3. addressed to us
        raise EnvelopeRejected("wrong_recipient")
    if now >= _t(routing.expires_at):  # 4. not expired
        raise EnvelopeRejected("expired")
    if _t(routing.created_at) > now + max_skew:  # 5. clock skew
        raise EnvelopeRejected("clock_skew")
    if seen(routing.id):  # 6. not seen before (rule 2)
        raise EnvelopeRejected("replay")
    _check_own_key(
        recipient, routing.recipient_key, manifest
    )  # 7. not a key of ours revoked as exposed
    header, payload = decrypt_frame(parts, keyring, now)  # 7. decrypt (v2: and unseal the meta)
    _check_isa_listed(header, manifest, now)  # 8. ISA known, matching, parties listed, active
    return Opened(header, parts.header_bytes, payload, envelope_sha256(frame))


def _accept(opened: Opened, user_id: str | None, facts: ReceiverFacts) -> Accepted:
    """Steps 9-13 on an opened envelope; raises ``EnvelopeRejected(reason)``."""
    header, payload = opened.header, opened.payload
    isa = _our_copy(header, facts.registry)  # 9. our copy is the cited one
    try:  # 10. payload schema
        parse_payload(header.type, payload, minimised=True)
    except PayloadInvalid as exc:
        raise EnvelopeRejected("payload_invalid", ", ".join(sorted(exc.errors))) from None
    expected = expected_lawful_basis(isa, header.purpose, header.sender, header.to)
    if header.lawful_basis != expected:  # 11. signed lawful-basis tags
        raise EnvelopeRejected("lawful_basis_mismatch")
    _check_fields(header, payload, isa)  # 12. fields within the ISA at this risk level
    _check_transport_identity(user_id, header.sender, facts.manifest)  # 13. AMQP user_id
    return Accepted(header, payload, opened.envelope_sha256)


def _refused(frame: bytes, exc: EnvelopeRejected, max_ciphertext: int) -> Refused:
    sha256 = envelope_sha256(frame)
    if exc.reason in _UNANSWERED:
        return Refused(exc.reason, exc.detail, None, sha256)
    # the frame passed step 1 and its sender step 2: its routing is authentic
    routing = peek_header(frame, max_ciphertext=max_ciphertext)
    return Refused(exc.reason, exc.detail, routing, sha256)


def _check_sender(parts: Frame, manifest: Manifest) -> None:
    identity = manifest.signing_key_for(parts.routing.sender_key)
    if identity is None:
        raise EnvelopeRejected("unknown_sender")
    try:
        identity.verify_key.verify(ENVELOPE_TAG + parts.signed, parts.sig)
    except (BadSignatureError, ValueError) as exc:
        raise EnvelopeRejected("bad_signature") from exc
    if identity.agency != parts.routing.sender:
        raise EnvelopeRejected("sender_mismatch")
    if identity.revoked:
        raise _revoked_sender(identity, manifest)
    if not identity.valid_at(_t(parts.routing.created_at)):
        raise EnvelopeRejected("sender_key_expired")


def _revoked_sender(identity: SigningIdentity, manifest: Manifest) -> EnvelopeRejected:
    """Step 2: the agency revoked, or only its certificate (with the RFC 5280 code for the log)."""
    if manifest.is_revoked(identity.agency):
        return EnvelopeRejected("sender_revoked")
    revocation = manifest.revocation_of("certificate", identity.fingerprint)
    code = revocation.code if revocation is not None else "unspecified"
    return EnvelopeRejected("sender_certificate_revoked", code)


def _check_own_key(recipient: str, kid: str, manifest: Manifest) -> None:
    """Step 7 (manifest rule 6): a key of ours revoked other than as retired is not used."""
    revocation = manifest.revocation_of("key", kid)
    if revocation is None or revocation.agency != recipient:
        return
    if revocation.code not in KEY_REVOCATIONS_KEEPING_GRACE:
        raise EnvelopeRejected("key_revoked", revocation.code)


def _check_isa_listed(header: Header, manifest: Manifest, now: datetime) -> None:
    versions = manifest.isa_versions(header.isa.id)
    if not versions:
        raise EnvelopeRejected("isa_unknown")
    isa = cited_entry(  # rule 4: the version cited, superseded only within its grace
        versions, header.isa.version, header.isa.sha256, sealed_at=_t(header.created_at), now=now
    )
    if header.sender not in isa.parties or header.to not in isa.parties:
        raise EnvelopeRejected("isa_parties")
    if not isa.active_at(now):
        raise EnvelopeRejected("isa_inactive")


def _our_copy(header: Header, registry: IsaRegistry) -> Isa:
    isa = registry.version(header.isa.id, header.isa.sha256)
    if isa is None:
        raise EnvelopeRejected("isa_mismatch", "our copy of the ISA differs from the cited one")
    return isa


def _check_fields(header: Header, payload: dict[str, Any], isa: Isa) -> None:
    violations = check_received(
        isa, sender=header.sender, recipient=header.to, purpose=header.purpose,
        message_type=header.type, risk_level=header.risk, payload=payload,
    )  # fmt: skip
    if violations:
        raise EnvelopeRejected("isa_violation", "; ".join(violations))


def _check_transport_identity(user_id: str | None, sender: str, manifest: Manifest) -> None:
    """RabbitMQ validates ``user_id`` only when a publisher sets it, so an absent one is refused
    too: a signed envelope published through anyone else's connection (another agency's, the
    operator's) is not accepted, even though its signature is good."""
    entry = manifest.agency(sender)
    if entry is None or user_id != entry.broker_user:
        raise EnvelopeRejected("transport_identity", "AMQP user_id is not the sender's broker user")
