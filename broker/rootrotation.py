"""Rotating the federation root with an overlap (issue 15.3; docs/protocol.md section 2.2).

Rules:
1. ``begin`` makes the next root (``ca/next-root.key``, 0600, and ``ca/next-root.pem``) and
   changes nothing agents see. The operator hands ``next-root.pem`` and its fingerprint to every
   agency, which pins it beside the current root (``[trust] next_root_certificate`` and
   ``next_root_fingerprint``).
2. ``switch`` (once every agent pins both roots) re-certifies the SAME keys, the manifest
   signer's and every agency's, under the next root with their validity windows unchanged
   (capped by the new root's end), makes the next root the federation's root (the old one is
   kept as ``ca/previous-root.pem``/``.key``) and publishes the next manifest serial. Agents
   pinning both roots accept it; envelopes keep verifying because no key changed.
3. The overlap ends on the agents' side: each agency makes the new root its
   ``root_certificate``/``root_fingerprint`` and removes the ``next_root_*`` pair; from then on a
   manifest or certificate under the old root is refused.
4. Each step is all-or-nothing; ``now`` is an argument; no private key is ever printed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from broker.agency import all_or_nothing
from broker.fedstate import (
    FederationLayout,
    load_state,
    publish_manifest,
    read_private,
    write_private,
)
from federation import pki
from federation.errors import ConfigError
from federation.keyfile import dump_private_key
from federation.keys import SigningKey

__all__ = ["ROOT_VALIDITY", "begin_root_rotation", "next_root_paths", "switch_root"]

ROOT_VALIDITY = timedelta(days=3650)


def next_root_paths(layout: FederationLayout) -> tuple[Path, Path]:
    """(certificate, key) of the next root while a rotation is under way."""
    return layout.root / "ca" / "next-root.pem", layout.root / "ca" / "next-root.key"


def _previous_paths(layout: FederationLayout) -> tuple[Path, Path]:
    return layout.root / "ca" / "previous-root.pem", layout.root / "ca" / "previous-root.key"


def begin_root_rotation(layout: FederationLayout, now: datetime, *, name: str) -> str:
    """Rule 1: make the next root; returns its fingerprint (what agents pin)."""
    cert_path, key_path = next_root_paths(layout)
    if cert_path.exists() or key_path.exists():
        raise ConfigError(f"{cert_path} exists: a root rotation is already under way")
    key = SigningKey.generate()
    root = pki.make_root(key, name=name, not_before=now, not_after=now + ROOT_VALIDITY)
    write_private(key_path, dump_private_key(key))
    cert_path.write_bytes(pki.certificate_to_pem(root))
    return pki.fingerprint(root)


def _reissue_under(
    path: Path, root_key: SigningKey, root: x509.Certificate, role: pki.CertificateRole
) -> None:
    """Re-certify the key of the certificate at ``path`` under ``root``, same window."""
    current = pki.certificate_from_bytes(path.read_bytes())
    cert = pki.issue_certificate(
        root_key=root_key, root_cert=root, subject=_common_name(current),
        public_key=pki.certificate_public_key(current), role=role,
        not_before=current.not_valid_before_utc,
        not_after=min(current.not_valid_after_utc, root.not_valid_after_utc),
        serial=x509.random_serial_number(),
    )  # fmt: skip
    path.write_bytes(pki.certificate_to_pem(cert))


def _common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def switch_root(layout: FederationLayout, now: datetime) -> int:
    """Rule 2: move the federation under the next root; returns the new manifest serial."""
    cert_path, key_path = next_root_paths(layout)
    if not cert_path.exists():
        raise ConfigError("no root rotation under way (run isa-broker ca rotate-root --begin)")
    root, root_key = pki.certificate_from_bytes(cert_path.read_bytes()), read_private(key_path)
    agencies = [layout.agency_cert(a.id) for a in load_state(layout).agencies]
    old_cert, old_key = _previous_paths(layout)
    files = [layout.state_file, layout.manifest, layout.signer_cert, *agencies]
    keys = [layout.root_cert, layout.root_key, cert_path, key_path, old_cert, old_key]
    with all_or_nothing(*files, *keys):
        _reissue_under(layout.signer_cert, root_key, root, pki.CertificateRole.MANIFEST_SIGNER)
        for path in agencies:
            _reissue_under(path, root_key, root, pki.CertificateRole.AGENCY)
        layout.root_cert.replace(old_cert)
        layout.root_key.replace(old_key)
        cert_path.replace(layout.root_cert)
        key_path.replace(layout.root_key)
        serial, _ = publish_manifest(layout, now)
    return serial
