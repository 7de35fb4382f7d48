"""Certificate renewal: an agency asks, signed by its current key, for its certificate to be
renewed; the operator judges the request against the manifest and re-certifies the SAME key.

This module performs no I/O and reads no clock: ``now`` is always an argument.

Rules:
1. A renewal request ``{v, agency, requested_at, signer, sig}`` is signed with the agency's
   CURRENT certified Ed25519 signing key over ``b"isa-relay/v1 renewal-request\\x00"`` followed
   by the canonical JSON of the other four fields; ``signer`` = hex SHA-256 of the raw public
   key; ``sig`` = base64url (no padding).
2. A renewal re-certifies the same key (decided, docs/protocol.md section 2.1): the sender key id
   in headers, the agency's key announcements and the agent's key file all stay as they are, so
   the agent installs the new certificate by accepting the next manifest, without a restart. A
   new signing key is a re-key, done by the operator (revoke, onboard anew).
3. The renewed certificate keeps the current certificate's ``not_before`` and ends
   ``validity`` after ``now`` (never after the root): its window contains the old one, so every
   envelope signed under the old certificate still verifies against the new one, by agents
   holding either manifest. That is the overlap; the manifest keeps one certificate per agency.
4. The manifest server accepts a request only when (in this order): it names the agency of the
   URL (``wrong_agency``); the agency is in the manifest (``unknown_agency``) and not revoked
   (``revoked``); it is signed by the key of that agency's certificate (``bad_signature``);
   that certificate is still valid now (``certificate_expired``: past expiry only the
   operator's ``agency reissue`` helps); ``requested_at`` is within ``REQUEST_SKEW`` of now
   (``stale``, so a captured request cannot be replayed later).
5. Renewal is due when the agency's certificate ends within the agency's lead time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from federation.canonical import b64url_decode, b64url_encode, canonical_json, format_time
from federation.errors import RenewalRefused
from federation.keys import SigningKey, UtcTime, utc
from federation.manifest import AgencyId, Manifest, SigningIdentity

__all__ = [
    "MAX_REQUEST_BYTES",
    "RENEWAL_TAG",
    "REQUEST_SKEW",
    "RenewalRequest",
    "judge_renewal",
    "parse_renewal",
    "renewal_due",
    "renewed_window",
    "sign_renewal",
    "verify_renewal",
]

RENEWAL_TAG = b"isa-relay/v1 renewal-request\x00"
REQUEST_SKEW = timedelta(minutes=10)
MAX_REQUEST_BYTES = 4096


class RenewalRequest(BaseModel):
    """A signed request: renew the certificate of ``agency``'s current signing key."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    v: Literal[1] = 1
    agency: AgencyId
    requested_at: UtcTime
    signer: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(max_length=200)

    def signed_bytes(self) -> bytes:
        """Exactly the bytes the signature covers (rule 1)."""
        return RENEWAL_TAG + canonical_json(self.model_dump(mode="json", exclude={"sig"}))


def sign_renewal(key: SigningKey, *, agency: str, at: datetime) -> RenewalRequest:
    """The renewal request of ``agency`` signed by ``key`` at ``at`` (rule 1)."""
    signer = hashlib.sha256(bytes(key.verify_key)).hexdigest()
    body = {"v": 1, "agency": agency, "requested_at": format_time(at), "signer": signer}
    sig = key.sign(RENEWAL_TAG + canonical_json(body)).signature
    return RenewalRequest.model_validate(body | {"sig": b64url_encode(sig)})


def parse_renewal(data: bytes) -> RenewalRequest:
    """A request from the bytes of a POST body; ``RenewalRefused('malformed')`` otherwise."""
    if len(data) > MAX_REQUEST_BYTES:
        raise RenewalRefused("malformed", f"more than {MAX_REQUEST_BYTES} bytes")
    try:
        return RenewalRequest.model_validate_json(data)
    except (ValidationError, ValueError):
        raise RenewalRefused("malformed", "the body is not a signed renewal request") from None


def verify_renewal(request: RenewalRequest, verify_key: VerifyKey) -> bool:
    """True if ``request`` is signed by ``verify_key`` and names it as its signer."""
    if hashlib.sha256(bytes(verify_key)).hexdigest() != request.signer:
        return False
    try:
        verify_key.verify(request.signed_bytes(), b64url_decode(request.sig))
    except (ValueError, BadSignatureError):
        return False
    return True


def judge_renewal(
    request: RenewalRequest, *, agency: str, manifest: Manifest, now: datetime
) -> SigningIdentity:
    """Rule 4: the identity to renew, or :class:`RenewalRefused` with the reason."""
    # 1. the request names the agency it is posted for
    if request.agency != agency:
        raise RenewalRefused("wrong_agency", f"a request of {request.agency} posted for {agency}")
    # 2. a current, unrevoked agency of the federation
    identity = manifest.signing_key_of(agency)
    if manifest.agency(agency) is None or identity is None:
        raise RenewalRefused("unknown_agency", f"{agency} is not in the manifest")
    if identity.revoked or manifest.is_revoked(agency):
        raise RenewalRefused("revoked", f"{agency} is revoked")
    # 3. signed by the key that agency's certificate certifies
    if not verify_renewal(request, identity.verify_key):
        raise RenewalRefused("bad_signature", f"not signed by {agency}'s certified key")
    # 4. that certificate still valid
    if not identity.valid_at(now):
        raise RenewalRefused("certificate_expired", f"{agency}'s certificate is not valid now")
    # 5. fresh
    if abs(utc(request.requested_at) - now) > REQUEST_SKEW:
        raise RenewalRefused("stale", f"requested at {request.requested_at}")
    return identity


def renewal_due(manifest: Manifest, agency: str, now: datetime, lead: timedelta) -> bool:
    """Rule 5: True when ``agency``'s certificate ends within ``lead`` of ``now``."""
    identity = manifest.signing_key_of(agency)
    return identity is not None and identity.not_after - now <= lead


def renewed_window(
    current: x509.Certificate, root: x509.Certificate, now: datetime, validity: timedelta
) -> tuple[datetime, datetime]:
    """Rule 3: (not_before, not_after) of the renewal of ``current`` issued at ``now``."""
    return current.not_valid_before_utc, min(now + validity, root.not_valid_after_utc)
