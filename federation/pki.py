"""The federation PKI: an Ed25519 root CA, agency signing certificates, the manifest signer.

This module performs no I/O and reads no clock: validity times and keys are arguments.

Rules:
1. The root is a self-signed Ed25519 CA certificate. Agents pin it by the hex SHA-256 of its DER
   encoding (``fingerprint``); ``verify_root`` refuses any other root.
2. Every end-entity certificate is issued directly by the root (a chain of one), is not a CA,
   has key usage ``digitalSignature`` only, and carries exactly one extended key usage naming its
   role: ``AGENCY_SIGNING`` (subject CN = agency id) or ``MANIFEST_SIGNING``. An agency
   certificate therefore cannot sign a manifest, and the manifest signer cannot sign envelopes.
3. Signing keys are ``federation.keys.SigningKey`` (PyNaCl, with a repr that hides the seed)
   everywhere in the project; they are converted to ``cryptography`` keys only here.
4. Certificates only ever reach an agent inside a manifest, so a certificate that fails
   verification raises ``ManifestRejected`` with a short reason code.
5. During a root rotation an agent pins two roots; a certificate is judged against the one that
   issued it (``issuing_root``), and only pinned roots are ever candidates.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from enum import Enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID
from nacl.signing import VerifyKey

from federation.errors import ManifestRejected
from federation.keys import SigningKey

__all__ = [
    "AGENCY_SIGNING",
    "MANIFEST_SIGNING",
    "CertificateRole",
    "certificate_from_bytes",
    "certificate_public_key",
    "certificate_request",
    "certificate_to_der",
    "certificate_to_pem",
    "fingerprint",
    "issue_certificate",
    "issuing_root",
    "make_root",
    "valid_at",
    "verify_certificate",
    "verify_root",
]

# OIDs under the UUID arc 2.25 (ITU-T X.667): no registration needed, no collision possible.
_ARC = "2.25.262466111972630765482967504149714002258"
AGENCY_SIGNING = x509.ObjectIdentifier(f"{_ARC}.1")
MANIFEST_SIGNING = x509.ObjectIdentifier(f"{_ARC}.2")


class CertificateRole(Enum):
    """What an end-entity certificate may sign (its one extended key usage)."""

    AGENCY = AGENCY_SIGNING
    MANIFEST_SIGNER = MANIFEST_SIGNING


def _crypto_key(key: SigningKey) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(key))


def _crypto_public(key: VerifyKey) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes(key))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_root(
    key: SigningKey, *, name: str, not_before: datetime, not_after: datetime, serial: int = 1
) -> x509.Certificate:
    """A self-signed Ed25519 root CA certificate (path length 0: it certifies end entities only)."""
    public = _crypto_public(key.verify_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(_crypto_key(key), algorithm=None)


def issue_certificate(
    *,
    root_key: SigningKey,
    root_cert: x509.Certificate,
    subject: str,
    public_key: VerifyKey,
    role: CertificateRole,
    not_before: datetime,
    not_after: datetime,
    serial: int,
) -> x509.Certificate:
    """Certify ``public_key`` for ``role``; ``subject`` is the agency id (or the signer's name)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(root_cert.subject)
        .public_key(_crypto_public(public_key))
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([role.value]), critical=True)
    )
    return builder.sign(_crypto_key(root_key), algorithm=None)


def certificate_request(key: SigningKey, agency_id: str) -> bytes:
    """A PEM PKCS#10 request for ``key``, subject ``CN=<agency_id>``, signed by ``key`` itself
    (proof of possession): what ``isa-broker agency add --certificate-request`` takes."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(agency_id))
    request = builder.sign(_crypto_key(key), algorithm=None)
    return request.public_bytes(serialization.Encoding.PEM)


def certificate_to_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_from_bytes(data: bytes) -> x509.Certificate:
    """Load a PEM or DER certificate; ``ManifestRejected('certificate_malformed')`` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ManifestRejected("certificate_malformed") from exc


def fingerprint(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(certificate_to_der(cert)).hexdigest()


def certificate_public_key(cert: x509.Certificate) -> VerifyKey:
    """The certified Ed25519 key as a PyNaCl ``VerifyKey``."""
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise ManifestRejected("certificate_not_ed25519")
    return VerifyKey(public.public_bytes_raw())


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if not isinstance(issuer.public_key(), Ed25519PublicKey):
        raise ManifestRejected("certificate_not_ed25519")
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ManifestRejected("certificate_untrusted") from exc


def verify_root(root_cert: x509.Certificate, pinned_fingerprint: str) -> None:
    """The root must match the pinned fingerprint, sign itself and be a CA."""
    pinned = pinned_fingerprint.lower().encode("utf-8")
    if not hmac.compare_digest(fingerprint(root_cert).encode("ascii"), pinned):
        raise ManifestRejected("root_not_pinned")
    _check_signed_by(root_cert, root_cert)
    constraints = _extension(root_cert, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or not constraints.ca:
        raise ManifestRejected("root_not_ca")


def _check_usage(cert: x509.Certificate, role: CertificateRole) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if not isinstance(constraints, x509.BasicConstraints) or constraints.ca:
        raise ManifestRejected("certificate_usage")
    usage = _extension(cert, x509.KeyUsage)
    if not isinstance(usage, x509.KeyUsage) or not usage.digital_signature or usage.key_cert_sign:
        raise ManifestRejected("certificate_usage")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    if not isinstance(extended, x509.ExtendedKeyUsage) or list(extended) != [role.value]:
        raise ManifestRejected("certificate_usage")


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise ManifestRejected("certificate_subject")
    return names[0].value


def issuing_root(cert: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate:
    """Rule 5: the one of ``roots`` (each already through ``verify_root``) that issued ``cert``;
    ``ManifestRejected('certificate_untrusted')`` when none did."""
    for root in roots:
        try:
            _check_signed_by(cert, root)
        except ManifestRejected:
            continue
        return root
    raise ManifestRejected("certificate_untrusted")


def verify_certificate(
    cert: x509.Certificate,
    root: x509.Certificate,
    now: datetime | None,
    *,
    role: CertificateRole = CertificateRole.AGENCY,
) -> str:
    """Check a chain of one (issued by ``root``), the usage for ``role`` and validity at ``now``.

    Returns the subject common name (the agency id). ``now=None`` skips only the validity window,
    for callers that check it later against another moment (an envelope's ``created_at``).
    The root itself must already have passed ``verify_root``.
    """
    _check_signed_by(cert, root)
    _check_usage(cert, role)
    if now is not None and not valid_at(cert, now):
        raise ManifestRejected("certificate_expired")
    return _subject(cert)


def valid_at(cert: x509.Certificate, moment: datetime) -> bool:
    """True when ``moment`` lies inside the certificate's validity window (inclusive)."""
    return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc
