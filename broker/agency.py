"""Onboarding and revoking agencies in the operator's federation directory.

Rules:
1. The operator certifies an agency's *signing* key, never creates it: ``add_agency`` takes the
   Ed25519 public key the agency generated on its own premises, issues its certificate from the
   federation CA, records it in ``federation.toml``, adds its broker user to ``broker.toml`` with
   a fresh password (returned once; only RabbitMQ's salted hash is stored) and publishes the next
   manifest serial. The broker user is ``broker.toml``'s ``[rabbitmq] user_prefix`` + the agency
   id unless named; a named user must carry that prefix too (``broker.config`` rule 5).
2. The operator can never create an agency's *encryption* key: ``announce_key`` only accepts a
   key announcement that verifies against that agency's certified signing key.
3. ``revoke_agency`` sets ``revoked_at`` (the manifest then carries an ``agency`` revocation and
   every agent refuses the agency as a sender and as a recipient), marks its broker user revoked
   in ``broker.toml`` (the next ``isa-broker provision`` deletes the user and closes its
   connections) and publishes the next serial. A revoked id is never re-used.
4. Each operation is all-or-nothing: if any step fails (the new manifest does not verify, a file
   cannot be written) the directory's files are put back as they were.
5. ``now`` is an argument; randomness (passwords, certificate serials) comes from the OS.
   Nothing here prints a secret, and no error message names one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID
from nacl.signing import VerifyKey

from broker.config import AgencyEntry as BrokerAgency
from broker.config import (
    BrokerConfig,
    broker_config_from_dict,
    load_broker_config,
    rabbit_password_hash,
    render_broker_toml,
)
from broker.devfed import FIRST_API_PORT, agent_toml
from broker.fedstate import (
    AgencyState,
    FederationLayout,
    announcement_json,
    federation_lock,
    load_state,
    publish_manifest,
    read_private,
    save_state,
    write_private,
)
from federation import pki
from federation.canonical import b64url_decode, canonical_json, format_time
from federation.errors import ConfigError, ManifestRejected
from federation.keyfile import dump_private_key
from federation.keys import (
    EncryptionKey,
    KeyAnnouncement,
    Keyring,
    RotationPolicy,
    SigningKey,
    announce,
    parse_announcement,
    utc,
    verify_announcement,
)
from federation.topology import is_agency_id

__all__ = [
    "CERT_VALIDITY",
    "AddedAgency",
    "GeneratedAgency",
    "add_agency",
    "all_or_nothing",
    "announce_key",
    "generate_agency",
    "parse_public_key",
    "public_key_from_csr",
    "revoke_agency",
]

CERT_VALIDITY = timedelta(days=365)
MAX_REASON = 200


@dataclass(frozen=True)
class AddedAgency:
    """What ``add_agency`` did; ``broker_password`` exists only here (hand it over once)."""

    id: str
    name: str
    broker_user: str
    certificate: Path
    serial: int
    broker_password: str = field(repr=False)


def parse_public_key(text: str) -> VerifyKey:
    """An Ed25519 public key given as base64url (no padding) of its 32 raw bytes."""
    try:
        raw = b64url_decode(text.strip())
    except ValueError:
        raise ConfigError("--public-key: not base64url") from None
    if len(raw) != 32:
        raise ConfigError("--public-key: an Ed25519 public key is 32 bytes")
    return VerifyKey(raw)


def public_key_from_csr(data: bytes, agency_id: str) -> VerifyKey:
    """The Ed25519 key of a PKCS#10 request (PEM or DER) whose CN is ``agency_id``.

    The request's self-signature proves the agency holds the private key (proof of possession).
    """
    try:
        pem = data.lstrip().startswith(b"-----BEGIN")
        csr = x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
        valid = csr.is_signature_valid
        public = csr.public_key()
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError("--certificate-request: not a PKCS#10 certificate request") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError("--certificate-request: the key must be Ed25519")
    if not valid:
        raise ConfigError("--certificate-request: its signature does not verify")
    if [n.value for n in names] != [agency_id]:
        raise ConfigError(f"--certificate-request: the subject CN must be exactly {agency_id!r}")
    return VerifyKey(public.public_bytes_raw())


@contextlib.contextmanager
def _all_or_nothing(*paths: Path) -> Iterator[None]:
    """Restore ``paths`` to their previous content (or absence) if the body raises."""
    before = {p: p.read_bytes() if p.exists() else None for p in paths}
    try:
        yield
    except BaseException:
        for path, data in before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        raise


all_or_nothing = _all_or_nothing  # rule 4, shared with broker.renewals


def _check_new(layout: FederationLayout, agency_id: str, name: str, key: VerifyKey) -> None:
    if not is_agency_id(agency_id):
        raise ConfigError(f"{agency_id!r}: an agency id is lowercase, like 'police-scotland'")
    if not name.strip() or len(name) > 200 or any(ord(c) < 0x20 for c in name):
        raise ConfigError("--name: 1 to 200 printable characters")
    state = load_state(layout)
    if state.agency(agency_id) is not None:
        raise ConfigError(f"agency {agency_id!r} already exists (ids are never re-used)")
    for other in state.agencies:
        if bytes(_certified_key(layout, other.id)) == bytes(key):
            raise ConfigError(f"that signing key is already certified for {other.id!r}")


def _certified_key(layout: FederationLayout, agency_id: str) -> VerifyKey:
    path = layout.agency_cert(agency_id)
    try:
        return pki.certificate_public_key(pki.certificate_from_bytes(path.read_bytes()))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.__class__.__name__})") from None


def _issue(layout: FederationLayout, agency_id: str, key: VerifyKey, now: datetime) -> bytes:
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    cert = pki.issue_certificate(
        root_key=read_private(layout.root_key),
        root_cert=root,
        subject=agency_id,
        public_key=key,
        role=pki.CertificateRole.AGENCY,
        not_before=now,
        not_after=min(now + CERT_VALIDITY, root.not_valid_after_utc),
        serial=x509.random_serial_number(),
    )
    return pki.certificate_to_pem(cert)


def _broker_config(layout: FederationLayout) -> BrokerConfig:
    return load_broker_config(layout.broker_toml)


def _with_agency(config: BrokerConfig, entry: BrokerAgency) -> BrokerConfig:
    raw = config.model_dump()
    raw["agencies"] = [*raw["agencies"], entry.model_dump()]
    return broker_config_from_dict(raw, source=f"broker.toml with {entry.id}")


def add_agency(
    layout: FederationLayout,
    *,
    agency_id: str,
    name: str,
    public_key: VerifyKey,
    now: datetime,
    broker_user: str | None = None,
) -> AddedAgency:
    """Certify an agency's own signing key and publish it in the next manifest (rule 1)."""
    _check_new(layout, agency_id, name, public_key)
    config = _broker_config(layout)
    user = broker_user or config.rabbitmq.user_prefix + agency_id
    password = secrets.token_urlsafe(24)
    entry = BrokerAgency(
        id=agency_id, name=name, broker_user=user, password_hash=rabbit_password_hash(password)
    )
    broker = _with_agency(config, entry)
    cert_path = layout.agency_cert(agency_id)
    lock = federation_lock(layout)
    with lock, _all_or_nothing(layout.state_file, layout.broker_toml, layout.manifest, cert_path):
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(_issue(layout, agency_id, public_key, now))
        state = load_state(layout)
        added = AgencyState(id=agency_id, name=name, broker_user=user)
        save_state(layout, state.model_copy(update={"agencies": (*state.agencies, added)}))
        layout.broker_toml.write_text(render_broker_toml(broker), encoding="utf-8")
        serial, _ = publish_manifest(layout, now)
    return AddedAgency(agency_id, name, user, cert_path, serial, password)


def _parse_announcement_file(data: bytes) -> KeyAnnouncement:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # undecodable, not JSON, absurd numbers or nesting
        raise ConfigError("the announcement is not a JSON document") from None
    try:
        return parse_announcement(obj)
    except ManifestRejected:
        raise ConfigError("the announcement is not a key announcement") from None


def announce_key(
    layout: FederationLayout, data: bytes, now: datetime
) -> tuple[KeyAnnouncement, int]:
    """Publish an agency's signed encryption-key announcement (rule 2); returns (it, serial)."""
    note = _parse_announcement_file(data)
    agency = load_state(layout).agency(note.agency)
    if agency is None:
        raise ConfigError(f"the announcement names an unknown agency {note.agency!r}")
    if agency.revoked_at is not None:
        raise ConfigError(f"agency {agency.id!r} is revoked")
    certified = _certified_key(layout, agency.id)
    try:
        verify_announcement(note, certified)
    except ManifestRejected:
        raise ConfigError(
            f"the announcement is not signed by {agency.id!r}'s certified signing key"
        ) from None
    if utc(note.not_after) <= now:
        raise ConfigError(f"the announced key expired at {note.not_after}")
    target = layout.announcements(agency.id) / f"{note.kid}.json"
    if target.exists():
        raise ConfigError(f"key {note.kid} of {agency.id!r} is already announced")
    with federation_lock(layout), _all_or_nothing(layout.state_file, layout.manifest, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(announcement_json(note))
        serial, _ = publish_manifest(layout, now)
    return note, serial


def _mark_revoked(config: BrokerConfig, agency_id: str) -> BrokerConfig:
    raw = config.model_dump()
    raw["agencies"] = [
        a | {"revoked": a["revoked"] or a["id"] == agency_id} for a in raw["agencies"]
    ]
    return broker_config_from_dict(raw, source="broker.toml")


def revoke_agency(layout: FederationLayout, *, agency_id: str, reason: str, now: datetime) -> int:
    """Revoke an agency in the manifest and on the broker (rule 3); returns the new serial."""
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON or any(ord(c) < 0x20 for c in reason):
        raise ConfigError(f"--reason: 1 to {MAX_REASON} printable characters")
    state = load_state(layout)
    agency = state.agency(agency_id)
    if agency is None:
        raise ConfigError(f"no agency {agency_id!r} in this federation")
    if agency.revoked_at is not None:
        raise ConfigError(f"agency {agency_id!r} was already revoked at {agency.revoked_at}")
    broker = _broker_config(layout)
    if all(a.id != agency_id for a in broker.agencies):
        raise ConfigError(f"{layout.broker_toml}: no broker user for {agency_id!r}")
    revoked = agency.model_copy(
        update={"revoked_at": format_time(now), "revocation_reason": reason}
    )
    lock = federation_lock(layout)
    with lock, _all_or_nothing(layout.state_file, layout.broker_toml, layout.manifest):
        state = load_state(layout)  # again under the lock: a re-sign may have moved the serial
        agencies = tuple(revoked if a.id == agency_id else a for a in state.agencies)
        save_state(layout, state.model_copy(update={"agencies": agencies}))
        layout.broker_toml.write_text(render_broker_toml(_mark_revoked(broker, agency_id)))
        serial, _ = publish_manifest(layout, now)
    return serial


@dataclass(frozen=True)
class GeneratedAgency:
    """A dev agency made by ``generate_agency``: its certificate, agent config and API token."""

    added: AddedAgency
    config: Path
    api_url: str
    api_token: str = field(repr=False)


def generate_agency(
    layout: FederationLayout,
    *,
    agency_id: str,
    name: str,
    now: datetime,
    broker_user: str | None = None,
) -> GeneratedAgency:
    """DEV ONLY: play the agency's part too (keys, announcement, ``agent.toml``), like
    ``dev-federation`` does, going through the same ``add_agency`` / ``announce_key`` steps."""
    home = layout.agency_dir(agency_id)
    if home.exists():
        raise ConfigError(f"{home} already exists")
    index = len(load_state(layout).agencies)
    signing = SigningKey.generate()
    try:
        write_private(home / "keys" / "signing.key", dump_private_key(signing))
        added = add_agency(
            layout, agency_id=agency_id, name=name, public_key=signing.verify_key, now=now,
            broker_user=broker_user,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    note = _make_encryption_key(home / "keys" / "encryption", signing, agency_id, now)
    announce_key(layout, announcement_json(note), now)
    token = secrets.token_urlsafe(32)
    config, api_url = _write_agent_config(layout, home, added, index, token)
    write_private(home / "api-token", token.encode() + b"\n")
    (home / "data").mkdir(mode=0o700, exist_ok=True)
    return GeneratedAgency(added, config, api_url, token)


def _make_encryption_key(
    directory: Path, signing: SigningKey, agency_id: str, now: datetime
) -> KeyAnnouncement:
    encryption = EncryptionKey.generate()
    keyring = Keyring(RotationPolicy())
    entry = keyring.add(encryption, now)
    write_private(directory / f"{entry.kid}.key", dump_private_key(encryption))
    write_private(  # the agent's key directory: 0600 files (agent/private_files.py)
        directory / "keyring.json",
        canonical_json([e.model_dump(mode="json") for e in keyring.entries()]),
    )
    return announce(
        signing,
        agency=agency_id,
        public_key=encryption.public,
        not_before=entry.not_before,
        not_after=entry.retire_at,
    )


def _write_agent_config(
    layout: FederationLayout, home: Path, added: AddedAgency, index: int, token: str
) -> tuple[Path, str]:
    rabbit = _broker_config(layout).rabbitmq
    vhost_url = rabbit.amqp_url.rstrip("/") + "/" + rabbit.vhost.replace("/", "%2F")
    port = FIRST_API_PORT + index
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    root = pki.certificate_from_bytes(layout.root_cert.read_bytes())
    text = agent_toml(
        agency=added.id, fingerprint=pki.fingerprint(root), amqp=vhost_url,
        user=added.broker_user, password=added.broker_password, port=port, token_hash=token_hash,
        header="SYNTHETIC dev agency added by isa-broker agency add --generate",
    )  # fmt: skip
    config = home / "agent.toml"
    write_private(config, text.encode())
    return config, f"http://127.0.0.1:{port}"
