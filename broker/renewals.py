"""The operator's side of certificate renewal: pending requests, issuing, recovery, the signer.

Rules:
1. ``isa-broker serve`` takes an agency's signed renewal request (``POST /v1/renewals/{agency}``)
   and judges it against the manifest it serves (``federation.renewal`` rule 4). An accepted
   request is kept in ``DIR/renewals/pending/<agency>.json`` (one per agency, the newest wins);
   every request, accepted or refused, is one line of ``DIR/renewals/audit.jsonl``.
2. Issuing needs the CA key, which a real deployment keeps offline: ``isa-broker agency renew
   --pending`` (a scheduled job on the machine that holds ``ca/root.key``) re-checks each
   pending request against the agency's certificate on disk, re-certifies the SAME key with
   ``federation.renewal.renewed_window`` (the new window contains the old one: the overlap),
   and publishes one next manifest serial. A dev federation lets ``serve --issue-renewals`` do
   it at once.
3. ``reissue`` is the operator's recovery path after a certificate has expired (no request can
   be signed then): it re-certifies the agency's certified key the same way and records who
   decided and why in the audit file. A revoked agency is never renewed nor reissued.
4. ``renew_signer`` re-certifies the manifest signer's key when its certificate ends within the
   lead time (or at once when none is given) and publishes the next serial under it; agents
   holding the previous manifest accept it, because it chains to the same root.
5. Each operation is all-or-nothing (``broker.agency``'s restore-on-failure). ``now`` is an
   argument. The audit holds agency ids, times, reason codes and the operator's reason: no key.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from broker.agency import CERT_VALIDITY, MAX_REASON, all_or_nothing
from broker.fedstate import FederationLayout, load_state, publish_manifest, read_private
from federation import pki
from federation.canonical import canonical_json, format_time
from federation.errors import ConfigError, IsaRelayError, ManifestRejected, RenewalRefused
from federation.manifest import Manifest
from federation.renewal import (
    RenewalRequest,
    judge_renewal,
    parse_renewal,
    renewed_window,
    verify_renewal,
)
from federation.topology import is_agency_id

log = logging.getLogger(__name__)

__all__ = [
    "RenewalDesk",
    "Renewed",
    "audit_file",
    "issue_pending",
    "pending_requests",
    "receive_request",
    "reissue",
    "renew_signer",
]


@dataclass(frozen=True)
class Renewed:
    """One certificate re-issued: whose, its new end, and the manifest serial carrying it."""

    agency: str
    not_after: datetime
    serial: int


def _pending_dir(layout: FederationLayout) -> Path:
    return layout.root / "renewals" / "pending"


def audit_file(layout: FederationLayout) -> Path:
    """The renewal audit: one JSON object per line (rule 1)."""
    return layout.root / "renewals" / "audit.jsonl"


def _audit(layout: FederationLayout, now: datetime, agency: str, event: str, **extra: str) -> None:
    path = audit_file(layout)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = canonical_json({"at": format_time(now), "agency": agency, "event": event} | extra)
    with open(path, "ab") as handle:
        handle.write(line + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def receive_request(
    layout: FederationLayout, body: bytes, *, agency: str, manifest: Manifest, now: datetime
) -> RenewalRequest:
    """Rule 1: judge a posted request; keep it pending, or audit the refusal and re-raise."""
    if not is_agency_id(agency):  # the id becomes a file name: only [a-z0-9-]
        raise RenewalRefused("malformed", "not an agency id")
    try:
        request = parse_renewal(body)
        judge_renewal(request, agency=agency, manifest=manifest, now=now)
    except RenewalRefused as exc:
        _audit(layout, now, agency, "refused", reason=exc.reason)
        raise
    path = _pending_dir(layout) / f"{agency}.json"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(request.model_dump_json().encode("utf-8"))
    tmp.replace(path)
    _audit(layout, now, agency, "requested", requested_at=request.requested_at)
    return request


def pending_requests(layout: FederationLayout) -> list[RenewalRequest]:
    """The requests waiting for the CA key, oldest agency id first."""
    folder = _pending_dir(layout)
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [parse_renewal(path.read_bytes()) for path in files]


def _certificate(path: Path) -> x509.Certificate:
    try:
        return pki.certificate_from_bytes(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except ManifestRejected:
        raise ConfigError(f"{path}: not a certificate") from None


def _recertify(
    layout: FederationLayout,
    path: Path,
    now: datetime,
    *,
    subject: str,
    role: pki.CertificateRole,
) -> datetime:
    """Re-certify the key of the certificate at ``path`` (rule 2's window); its new end."""
    current = _certificate(path)
    root = _certificate(layout.root_cert)
    not_before, not_after = renewed_window(current, root, now, CERT_VALIDITY)
    cert = pki.issue_certificate(
        root_key=read_private(layout.root_key), root_cert=root, subject=subject,
        public_key=pki.certificate_public_key(current), role=role,
        not_before=not_before, not_after=not_after, serial=x509.random_serial_number(),
    )  # fmt: skip
    path.write_bytes(pki.certificate_to_pem(cert))
    return not_after


def _renewable(layout: FederationLayout, agency: str) -> None:
    entry = load_state(layout).agency(agency)
    if entry is None:
        raise ConfigError(f"no agency {agency!r} in this federation")
    if entry.revoked_at is not None:
        raise ConfigError(f"agency {agency!r} is revoked: it is never renewed")


def _issue_one(layout: FederationLayout, request: RenewalRequest, now: datetime) -> datetime | None:
    """Rule 2 for one request: its new certificate's end, or None (refusal audited)."""
    agency = request.agency
    entry = load_state(layout).agency(agency)
    if entry is None or entry.revoked_at is not None:
        _audit(layout, now, agency, "refused", reason="revoked")
        return None
    key = pki.certificate_public_key(_certificate(layout.agency_cert(agency)))
    if not verify_renewal(request, key):  # the certified key changed since the request
        _audit(layout, now, agency, "refused", reason="bad_signature")
        return None
    return _recertify(
        layout, layout.agency_cert(agency), now, subject=agency, role=pki.CertificateRole.AGENCY
    )


def issue_pending(layout: FederationLayout, now: datetime) -> list[Renewed]:
    """Rule 2: issue every pending renewal and publish them in one manifest serial."""
    requests = pending_requests(layout)
    if not requests:
        return []
    certs = [layout.agency_cert(r.agency) for r in requests]
    pending = [_pending_dir(layout) / f"{r.agency}.json" for r in requests]
    ends: dict[str, datetime] = {}
    with all_or_nothing(layout.state_file, layout.manifest, *certs, *pending):
        for request, path in zip(requests, pending, strict=True):
            path.unlink()
            end = _issue_one(layout, request, now)
            if end is not None:
                ends[request.agency] = end
        serial = publish_manifest(layout, now)[0] if ends else 0
    for agency, end in ends.items():
        _audit(layout, now, agency, "issued", not_after=format_time(end), serial=str(serial))
    return [Renewed(agency, end, serial) for agency, end in ends.items()]


def reissue(layout: FederationLayout, *, agency: str, reason: str, now: datetime) -> Renewed:
    """Rule 3: the operator re-certifies ``agency``'s key (recovery after expiry)."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 0x20 for c in reason):
        raise ConfigError(f"--reason: 1 to {MAX_REASON} printable characters")
    _renewable(layout, agency)
    cert = layout.agency_cert(agency)
    with all_or_nothing(layout.state_file, layout.manifest, cert):
        end = _recertify(layout, cert, now, subject=agency, role=pki.CertificateRole.AGENCY)
        serial, _ = publish_manifest(layout, now)
    _audit(layout, now, agency, "reissued", reason=reason, not_after=format_time(end),
           serial=str(serial))  # fmt: skip
    return Renewed(agency, end, serial)


def renew_signer(
    layout: FederationLayout, now: datetime, *, within: timedelta | None = None
) -> Renewed | None:
    """Rule 4: renew the manifest signer's certificate (when due); None if it was not due."""
    current = _certificate(layout.signer_cert)
    if within is not None and current.not_valid_after_utc - now > within:
        return None
    name = str(current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    with all_or_nothing(layout.state_file, layout.manifest, layout.signer_cert):
        end = _recertify(
            layout, layout.signer_cert, now, subject=name, role=pki.CertificateRole.MANIFEST_SIGNER
        )
        serial, _ = publish_manifest(layout, now)
    _audit(layout, now, "manifest-signer", "signer_renewed", not_after=format_time(end),
           serial=str(serial))  # fmt: skip
    return Renewed("manifest-signer", end, serial)


class RenewalDesk:
    """What ``isa-broker serve`` does with a posted request (rule 1; rule 2 when ``issue``).

    Blocking: call :meth:`receive` from a thread. One lock serialises requests, so two agencies'
    renewals never race for the same manifest serial.
    """

    def __init__(self, layout: FederationLayout, *, issue: bool = False) -> None:
        self.layout = layout
        self.issue = issue
        self._lock = threading.Lock()

    def receive(
        self, body: bytes, *, agency: str, manifest: Manifest, now: datetime
    ) -> Renewed | None:
        """Keep the request pending; with ``issue``, issue it now. The renewal, or None."""
        with self._lock:
            receive_request(self.layout, body, agency=agency, manifest=manifest, now=now)
            if not self.issue:
                return None
            try:
                done = [r for r in issue_pending(self.layout, now) if r.agency == agency]
            except (OSError, IsaRelayError) as exc:  # rolled back: the request stays pending
                log.warning("renewal of %s kept pending, not issued: %s", agency, exc)
                return None
            return done[0] if done else None
